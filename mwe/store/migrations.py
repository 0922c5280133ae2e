"""Ordered, named schema migrations for the DuckDB store.

Each migration is a function registered with :func:`migration`; they run in definition order and
each one's name is recorded in ``_migrations`` once applied, so a database is upgraded in place by
running the ones it lacks. Never edit a migration that has shipped: add a new one.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    """Register ``fn`` as the next migration, under its function name."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


def pending(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Names of the migrations this database has not applied yet (all, for a new file)."""
    if not _has_table(conn):
        return [name for name, _ in MIGRATIONS]
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations").fetchall()}
    return [name for name, _ in MIGRATIONS if name not in done]


def migrate(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply every pending migration, each in its own transaction; return the names applied."""
    _ensure_table(conn)
    todo = set(pending(conn))
    applied = []
    for name, fn in MIGRATIONS:
        if name not in todo:
            continue
        conn.execute("BEGIN TRANSACTION")
        try:
            fn(conn)
            conn.execute("INSERT INTO _migrations VALUES (?, now())", [name])
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def user_tables(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """The names of the tables in the database's main schema, ``_migrations`` included."""
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = 'main' ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def _has_table(conn: duckdb.DuckDBPyConnection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = '_migrations'"
    ).fetchone()
    return bool(row and row[0])


def _ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMP)"
    )


@migration
def m001_initial(conn: duckdb.DuckDBPyConnection) -> None:
    """The tables of DESIGN.md; later issues fill candidates, runs, llm_calls, scores, reviews."""
    conn.execute("CREATE SEQUENCE eval_set_ids START 1")
    conn.execute(
        """
        CREATE TABLE eval_sets (
            id INTEGER PRIMARY KEY DEFAULT nextval('eval_set_ids'),
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            status VARCHAR NOT NULL,          -- 'final' once written; finished versions never change
            parent_id INTEGER,                -- the version this one was made from, if any
            format VARCHAR NOT NULL,          -- 'persona', 'choice' or 'mixed'
            description VARCHAR,
            spec JSON,
            provenance JSON NOT NULL,
            stats JSON,
            item_count INTEGER NOT NULL,
            content_hash VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE items (
            set_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            item_hash VARCHAR NOT NULL,
            format VARCHAR NOT NULL,
            question VARCHAR NOT NULL,
            statement VARCHAR,
            answer_matching_behavior VARCHAR NOT NULL,
            answer_not_matching_behavior JSON NOT NULL,  -- a string or a list, as imported
            label_confidence DOUBLE,
            metadata JSON NOT NULL,
            PRIMARY KEY (set_id, idx)
        )
        """
    )
    conn.execute("CREATE SEQUENCE run_ids START 1")
    conn.execute(
        """
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY DEFAULT nextval('run_ids'),
            kind VARCHAR NOT NULL,            -- 'import', 'generate', 'score', ...
            status VARCHAR NOT NULL,          -- 'running', 'done', 'failed'
            params JSON,
            set_id INTEGER,
            started_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE candidates (
            run_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            stage VARCHAR NOT NULL,           -- the last stage the candidate reached
            intended_label VARCHAR,
            item JSON,                        -- the parsed item, when parsing succeeded
            raw_text VARCHAR,
            label_confidence DOUBLE,
            relevance DOUBLE,
            kept BOOLEAN NOT NULL DEFAULT false,
            drop_reason VARCHAR,
            llm_call_key VARCHAR,             -- the cached call that produced it
            PRIMARY KEY (run_id, idx)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE llm_calls (
            key VARCHAR PRIMARY KEY,          -- hash of the canonical request; never holds a key
            backend VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            base_url VARCHAR,
            request JSON NOT NULL,
            response JSON NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cost_usd DOUBLE,                  -- NULL when the price is unknown, never 0 for unknown
            latency_s DOUBLE,
            run_id INTEGER,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE scores (
            set_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            model VARCHAR NOT NULL,
            prompt_format VARCHAR NOT NULL,
            run_id INTEGER,
            method VARCHAR NOT NULL,          -- 'logprobs', 'top_logprobs', 'sampled', ...
            logprobs JSON NOT NULL,           -- {option: log-probability}
            details JSON,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (set_id, idx, model, prompt_format)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE reviews (
            set_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            reviewer VARCHAR NOT NULL,
            verdict VARCHAR NOT NULL,
            note VARCHAR,
            created_at TIMESTAMP NOT NULL
        )
        """
    )


@migration
def m002_judges(conn: duckdb.DuckDBPyConnection) -> None:
    """Preference models fitted to a user's labelled sets (`mwe judge train`), versioned by name
    like the sets; the weights are an ``.npz`` archive (arrays only, never pickled code)."""
    conn.execute("CREATE SEQUENCE judge_ids START 1")
    conn.execute(
        """
        CREATE TABLE judges (
            id INTEGER PRIMARY KEY DEFAULT nextval('judge_ids'),
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            kind VARCHAR NOT NULL,            -- 'pm': a head over the embedded sentence model
            training JSON NOT NULL,           -- the sets it was fitted on, their hashes, settings
            metrics JSON NOT NULL,            -- figures measured when it was fitted
            weights BLOB NOT NULL,
            content_hash VARCHAR NOT NULL,    -- of the training data and settings
            created_at TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        )
        """
    )


@migration
def m003_reviews(conn: duckdb.DuckDBPyConnection) -> None:
    """Human review answers (`mwe review`): one row per (item, reviewer), replaced when the
    reviewer answers again, with the relevance rating the first table lacked; and the parameter
    counts of scored models, for the report's model-size view."""
    conn.execute(
        """
        CREATE TABLE reviews_v2 (
            set_id INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            reviewer VARCHAR NOT NULL,
            verdict VARCHAR NOT NULL,         -- is the label right: 'yes', 'no' or 'unsure'
            relevance INTEGER,                -- 1 (off topic) to 5 (squarely about it)
            note VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            PRIMARY KEY (set_id, idx, reviewer)
        )
        """
    )
    conn.execute(
        "INSERT INTO reviews_v2 SELECT set_id, idx, reviewer, verdict, NULL, note, "
        "min(created_at) OVER w, max(created_at) OVER w FROM reviews "
        "WINDOW w AS (PARTITION BY set_id, idx, reviewer) "
        "QUALIFY row_number() OVER (w ORDER BY created_at DESC) = 1"
    )
    conn.execute("DROP TABLE reviews")
    conn.execute("ALTER TABLE reviews_v2 RENAME TO reviews")
    conn.execute(
        """
        CREATE TABLE model_sizes (
            model VARCHAR PRIMARY KEY,        -- as scored, e.g. 'local', 'hf:/path', 'openai:x'
            param_count BIGINT NOT NULL,
            source VARCHAR NOT NULL,          -- 'config' (counted when loaded) or 'user'
            updated_at TIMESTAMP NOT NULL
        )
        """
    )


@migration
def m004_provider_batches(conn: duckdb.DuckDBPyConnection) -> None:
    """Provider batches (`--batch`: OpenAI Batch, Anthropic Message Batches): each submitted
    batch and the cache requests of each of its lines, so that a restarted run polls the batch
    it submitted instead of submitting (and paying for) the same requests again."""
    conn.execute("CREATE SEQUENCE provider_batch_ids START 1")
    conn.execute(
        """
        CREATE TABLE provider_batches (
            id INTEGER PRIMARY KEY DEFAULT nextval('provider_batch_ids'),
            provider_id VARCHAR NOT NULL,     -- the provider's batch id
            backend VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            base_url VARCHAR,
            status VARCHAR NOT NULL,          -- 'submitted', then 'collected' once in llm_calls
            lines INTEGER NOT NULL,
            succeeded INTEGER,                -- once collected
            failed INTEGER,
            run_id INTEGER,
            created_at TIMESTAMP NOT NULL,
            finished_at TIMESTAMP
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE provider_batch_lines (
            batch_id INTEGER NOT NULL,        -- provider_batches.id
            custom_id VARCHAR NOT NULL,       -- the cache key of the line's first sample
            requests JSON NOT NULL,           -- the cache requests the line answers, in order
            PRIMARY KEY (batch_id, custom_id)
        )
        """
    )


@migration
def m005_rollouts(conn: duckdb.DuckDBPyConnection) -> None:
    """Dynamic evals (`mwe rollout`): a suite is one rollout command's settings; each rollout
    is one scenario played with one target for up to N turns, judged 1-10 with quoted
    evidence; its turns are rows in order; reviewers score transcripts 1-10 too."""
    conn.execute("CREATE SEQUENCE rollout_suite_ids START 1")
    conn.execute(
        """
        CREATE TABLE rollout_suites (
            id INTEGER PRIMARY KEY DEFAULT nextval('rollout_suite_ids'),
            name VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            description VARCHAR NOT NULL,     -- the behaviour
            params JSON NOT NULL,             -- everything the rollouts depend on
            params_hash VARCHAR NOT NULL,     -- a rerun with the same settings resumes this suite
            scenarios JSON NOT NULL,          -- the scenario texts, in order
            run_id INTEGER,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (name, version)
        )
        """
    )
    conn.execute("CREATE SEQUENCE rollout_ids START 1")
    conn.execute(
        """
        CREATE TABLE rollouts (
            id INTEGER PRIMARY KEY DEFAULT nextval('rollout_ids'),
            suite_id INTEGER NOT NULL,
            target VARCHAR NOT NULL,
            scenario INTEGER NOT NULL,        -- index into the suite's scenarios
            rep INTEGER NOT NULL,
            score INTEGER,                    -- the behaviour's presence, 1-10; NULL: unparsed
            realism INTEGER,
            awareness INTEGER,                -- evaluation awareness, 1-10
            evidence JSON NOT NULL,           -- quotes from the transcript
            justification VARCHAR,
            judge_reply VARCHAR NOT NULL,
            judge_method VARCHAR NOT NULL,    -- 'reply' (parsed) or 'logprobs' (1-10 asked alone)
            run_id INTEGER,
            created_at TIMESTAMP NOT NULL,
            UNIQUE (suite_id, target, scenario, rep)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE rollout_turns (
            rollout_id INTEGER NOT NULL,
            turn INTEGER NOT NULL,            -- 0, 1, ...: each user message and reply
            role VARCHAR NOT NULL,            -- 'user' (the auditor) or 'assistant' (the target)
            content VARCHAR NOT NULL,
            PRIMARY KEY (rollout_id, turn, role)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE transcript_reviews (
            rollout_id INTEGER NOT NULL,
            reviewer VARCHAR NOT NULL,
            score INTEGER NOT NULL,           -- the reviewer's 1-10
            comment VARCHAR,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (rollout_id, reviewer)
        )
        """
    )
    # Red teaming (`mwe redteam`): each run with its settings, every test case of every round
    # with the target's reply and the classifier's score, and each round's figures; the failing
    # cases are also stored as a set version (set_id).
    conn.execute("CREATE SEQUENCE redteam_ids START 1")
    conn.execute(
        """
        CREATE TABLE redteam_runs (
            id INTEGER PRIMARY KEY DEFAULT nextval('redteam_ids'),
            name VARCHAR NOT NULL,
            description VARCHAR NOT NULL,
            params JSON NOT NULL,
            params_hash VARCHAR NOT NULL,     -- the same command again finds this run
            set_id INTEGER,                   -- the failing cases' set version (NULL: none)
            run_id INTEGER,
            created_at TIMESTAMP NOT NULL
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE redteam_cases (
            redteam_id INTEGER NOT NULL,
            round INTEGER NOT NULL,           -- 1: zero-shot; later: few-shot from failures
            idx INTEGER NOT NULL,
            input VARCHAR NOT NULL,
            reply VARCHAR NOT NULL,
            score DOUBLE NOT NULL,            -- the classifier's p(the reply shows it)
            flagged BOOLEAN NOT NULL,
            PRIMARY KEY (redteam_id, round, idx)
        )
        """
    )
    conn.execute(
        """
        CREATE TABLE redteam_rounds (
            redteam_id INTEGER NOT NULL,
            round INTEGER NOT NULL,
            cases INTEGER NOT NULL,
            failures INTEGER NOT NULL,
            failure_rate DOUBLE NOT NULL,
            self_bleu DOUBLE,                 -- diversity: lower is more diverse
            embedding_similarity DOUBLE,      -- mean pairwise cosine of the inputs
            PRIMARY KEY (redteam_id, round)
        )
        """
    )


@migration
def m006_run_errors(conn: duckdb.DuckDBPyConnection) -> None:
    """A failed run's one-line cause, recorded by :class:`mwe.runs.RunRecord`."""
    conn.execute("ALTER TABLE runs ADD COLUMN error VARCHAR")
