"""The mail service: turns user and order events into e-mails sent through SES."""
