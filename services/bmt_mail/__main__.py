"""`python -m bmt_mail`: run the mail service."""

from bmt_common.runner import serve
from bmt_mail.app import make_app
from bmt_mail.settings import MailSettings

settings = MailSettings()
serve("mail", settings, lambda: make_app(settings))
