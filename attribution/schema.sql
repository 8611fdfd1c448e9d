-- cx-attribution store schema. The version lives in schema_meta; attribution/store.py migrates.
-- Column meanings and allowed values: data/README.md (the data contract).
-- Large tables carry no PRIMARY KEY: an index over 100M outcome rows costs gigabytes of memory.
-- Key uniqueness is enforced by the loader (attribution/load.py), which upserts on the key.

CREATE TABLE IF NOT EXISTS schema_meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

-- One row per customer. Columns beyond these are segment attributes added by loads.
CREATE TABLE IF NOT EXISTS customers (
    customer_id VARCHAR NOT NULL,
    signup_date DATE    NOT NULL,
    tier        VARCHAR,
    region      VARCHAR,
    channel     VARCHAR
);

-- CX touchpoints and service cases. Key: (customer_id, ts, kind).
CREATE TABLE IF NOT EXISTS interactions (
    customer_id              VARCHAR   NOT NULL,
    ts                       TIMESTAMP NOT NULL,
    channel                  VARCHAR,
    kind                     VARCHAR   NOT NULL,
    resolution               VARCHAR,
    csat                     SMALLINT,
    effort                   SMALLINT,
    first_contact_resolution BOOLEAN,
    handle_minutes           DOUBLE
);

-- What was done to whom. Key: (customer_id, intervention, ts).
CREATE TABLE IF NOT EXISTS interventions (
    customer_id   VARCHAR   NOT NULL,
    intervention  VARCHAR   NOT NULL,
    ts            TIMESTAMP NOT NULL,
    unit_cost     DOUBLE    NOT NULL,
    experiment_id VARCHAR
);

-- One row per customer and month (period = first day of the month). Key: (customer_id, period).
CREATE TABLE IF NOT EXISTS outcomes (
    customer_id   VARCHAR NOT NULL,
    period        DATE    NOT NULL,
    active        BOOLEAN NOT NULL,
    revenue       DOUBLE  NOT NULL,
    cost_to_serve DOUBLE  NOT NULL
);

CREATE TABLE IF NOT EXISTS experiments (
    experiment_id VARCHAR PRIMARY KEY,
    intervention  VARCHAR NOT NULL,
    design        JSON,
    started       DATE    NOT NULL,
    ended         DATE
);

-- Key: (experiment_id, customer_id).
CREATE TABLE IF NOT EXISTS assignments (
    experiment_id VARCHAR NOT NULL,
    customer_id   VARCHAR NOT NULL,
    arm           VARCHAR NOT NULL,
    stratum       VARCHAR,
    assigned_at   TIMESTAMP
);

-- Written by cx: one row per model run.
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    started     TIMESTAMP NOT NULL,
    finished    TIMESTAMP,
    status      VARCHAR   NOT NULL,
    config_hash VARCHAR,
    data_hash   VARCHAR,
    versions    JSON,
    diagnostics JSON
);

-- Written by cx: published estimates, one row per run and reported number.
CREATE TABLE IF NOT EXISTS estimates (
    run_id         VARCHAR NOT NULL,
    experiment_id  VARCHAR,
    intervention   VARCHAR NOT NULL,
    arm            VARCHAR,
    outcome        VARCHAR NOT NULL,
    segment_by     VARCHAR NOT NULL,
    segment        VARCHAR NOT NULL,
    metric         VARCHAR NOT NULL,
    mean           DOUBLE,
    lo             DOUBLE,
    hi             DOUBLE,
    p_positive     DOUBLE,
    expected_loss  DOUBLE,
    n_treated      BIGINT,
    n_control      BIGINT,
    interval_width DOUBLE,
    method         VARCHAR,
    -- added in schema version 2 (observational questions in cx refresh):
    estimand       VARCHAR,  -- itt (randomized, intention to treat), ate or att (observational)
    verdict        VARCHAR,  -- refutation verdict in words (observational rows), else NULL
    question       VARCHAR,  -- the [[observational]] question's name, NULL for experiments
    estimator      VARCHAR,  -- observational route: naive, dowhy_psw, dowhy_regression, aipw,
                             -- bayes_gformula (money rows: the route whose ATT draws they use)
    -- added in schema version 3 (target-trial emulation, issue 17):
    population     VARCHAR   -- whom an observational row is about after trimming, in words
);

-- Written by cx: one row per load that changed something.
CREATE TABLE IF NOT EXISTS loads (
    load_id        BIGINT PRIMARY KEY,
    table_name     VARCHAR   NOT NULL,
    file_name      VARCHAR   NOT NULL,
    content_hash   VARCHAR   NOT NULL,
    rows_in_file   BIGINT    NOT NULL,
    rows_inserted  BIGINT    NOT NULL,
    rows_updated   BIGINT    NOT NULL,
    rows_unchanged BIGINT    NOT NULL,
    loaded_at      TIMESTAMP NOT NULL
);

-- Written by the simulator: the effects it planted, to check estimates against.
CREATE TABLE IF NOT EXISTS truth (
    experiment_id VARCHAR,
    intervention  VARCHAR NOT NULL,
    arm           VARCHAR,
    outcome       VARCHAR NOT NULL,
    segment_by    VARCHAR NOT NULL,
    segment       VARCHAR NOT NULL,
    metric        VARCHAR NOT NULL,
    estimand      VARCHAR NOT NULL,
    effect        DOUBLE  NOT NULL,
    n             BIGINT  NOT NULL
);

-- Written by the simulator when asked (simulate(..., individual_effects=True)): every customer's
-- own planted effect (treated path minus untreated path, common random numbers), one row per
-- customer of each intervention's population (per customer and trial month for a staggered
-- outreach). The truth table's overall rows are their averages (att: over the treated rows).
CREATE TABLE IF NOT EXISTS truth_customers (
    intervention  VARCHAR NOT NULL,
    experiment_id VARCHAR,
    trial_month   DATE,
    customer_id   VARCHAR NOT NULL,
    treated       BOOLEAN NOT NULL,
    retention     DOUBLE  NOT NULL,
    revenue       DOUBLE  NOT NULL,
    cost_to_serve DOUBLE  NOT NULL,
    net_value     DOUBLE  NOT NULL
);
