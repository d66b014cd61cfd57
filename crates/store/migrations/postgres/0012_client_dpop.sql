-- RFC 9449 §5.2 client metadata `dpop_bound_access_tokens`: every token request of the
-- client must carry a DPoP proof. FALSE for every client created before.
ALTER TABLE clients ADD COLUMN dpop_bound_access_tokens BOOLEAN NOT NULL DEFAULT FALSE;
