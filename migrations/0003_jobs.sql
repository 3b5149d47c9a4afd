-- Fair turns for the job queue: every claim takes the next number, and a member's last number
-- says how recently they were served (round-robin across members).
ALTER TABLE jobs ADD COLUMN claim_seq INTEGER;
CREATE INDEX jobs_turns ON jobs(member_id, kind, claim_seq);
CREATE INDEX jobs_member_kind ON jobs(member_id, kind, created_at);
