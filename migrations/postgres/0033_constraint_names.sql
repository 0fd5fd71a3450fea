-- Storage v2 (PostgreSQL only): the constraints and sequences of tables that storage v2 built
-- under a temporary name (`…_v2`, `…_v3`) and then renamed take their table's name too, so that
-- an error or a `\d` names them as the table is named. Renames change the catalog alone.
ALTER TABLE import_files RENAME CONSTRAINT import_files_v2_import_fkey TO import_files_import_fkey;
ALTER TABLE import_errors RENAME CONSTRAINT import_errors_v2_import_fkey TO import_errors_import_fkey;
ALTER TABLE export_files RENAME CONSTRAINT export_files_v2_export_fkey TO export_files_export_fkey;
ALTER TABLE batch_recipients
    RENAME CONSTRAINT batch_recipients_v2_batch_fkey TO batch_recipients_batch_fkey;
ALTER TABLE batch_chunks RENAME CONSTRAINT batch_chunks_v2_state_check TO batch_chunks_state_check;
ALTER TABLE batch_chunks RENAME CONSTRAINT batch_chunks_v2_batch_fkey TO batch_chunks_batch_fkey;
ALTER TABLE batch_skips RENAME CONSTRAINT batch_skips_v2_batch_fkey TO batch_skips_batch_fkey;
ALTER TABLE delivery_reports
    RENAME CONSTRAINT delivery_reports_v2_batch_fkey TO delivery_reports_batch_fkey;
ALTER SEQUENCE contact_groups_v2_key_seq RENAME TO contact_groups_key_seq;
ALTER SEQUENCE contacts_v3_key_seq RENAME TO contacts_key_seq;
