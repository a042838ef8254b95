-- Every mail sent and SES's message id; written in the transaction that records the event
-- as applied (applied_events), so a replayed event finds it sent.
CREATE TABLE sent_mails (
    id             bigserial PRIMARY KEY,
    recipient      text        NOT NULL,
    template       text        NOT NULL,
    ses_message_id text        NOT NULL,
    sent_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sent_mails_recipient ON sent_mails (recipient, sent_at);
