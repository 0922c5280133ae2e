"""Human review: the app of ``mwe review``, its pages (``web/``), the review figures."""
