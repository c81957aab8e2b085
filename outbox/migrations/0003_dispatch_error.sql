-- hookrelay schema, version 3.
-- Why an event could not be fanned out, or why it reached no endpoint
-- (an endpoint_id that names no endpoint of the event's tenant and type),
-- and, for an event the fan-out had to set aside, when it is tried again.
-- A row that fails the fan-out no longer stops the rows behind it.
ALTER TABLE {{schema}}.outbox ADD COLUMN dispatch_error text,
                              ADD COLUMN dispatch_retry_at timestamptz;
