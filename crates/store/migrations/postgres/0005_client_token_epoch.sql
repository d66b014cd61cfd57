-- Security issue #11: every token carries its client's epoch (claim `client_epoch`) and is
-- active only while the client is still in that epoch. A new random epoch is drawn at
-- creation and at every change that must end the client's tokens (disabled, secret rotated
-- without overlap, scopes or audiences narrowed, credentials replaced). 0 for clients created
-- before, whose earlier tokens carry no epoch.
ALTER TABLE clients ADD COLUMN token_epoch BIGINT NOT NULL DEFAULT 0;
