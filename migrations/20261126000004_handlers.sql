-- Uploaded WASM handler components (PUT /v1/handlers/{name}/{version}).
-- A (name, version) is immutable: uploading other bytes under it is refused
-- (409); it can be deleted and uploaded again. Workers resolve a step's
-- handler here on every attempt (the exact `handler.version` of the template,
-- else the highest version), so a new upload is used by the next step.
CREATE TABLE tasker.handler_components (
    name              text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_.\-]*$' AND length(name) <= 100),
    version           text NOT NULL CHECK (version ~ '^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$'),
    -- The version as numbers, for "latest" (highest semver) without parsing.
    version_major     bigint NOT NULL,
    version_minor     bigint NOT NULL,
    version_patch     bigint NOT NULL,
    sha256            text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0),
    contract_version  text NOT NULL,
    uploaded_at       timestamptz NOT NULL DEFAULT now(),
    bytes             bytea NOT NULL,
    PRIMARY KEY (name, version)
);
-- Compiled code does not compress: keep the bytes out of line, uncompressed.
ALTER TABLE tasker.handler_components ALTER COLUMN bytes SET STORAGE EXTERNAL;
CREATE INDEX handler_components_latest
    ON tasker.handler_components (name, version_major DESC, version_minor DESC, version_patch DESC);
