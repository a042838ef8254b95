"""The user service: accounts, e-mail codes, sessions and token keys."""
