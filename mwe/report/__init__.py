"""The report (``mwe report``): plots and page, and a set summed up in a few lines."""
