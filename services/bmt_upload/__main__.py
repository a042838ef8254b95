"""`python -m bmt_upload`: run the upload service."""

from bmt_common.runner import serve
from bmt_upload.app import make_app
from bmt_upload.settings import UploadSettings

settings = UploadSettings()
serve("upload", settings, lambda: make_app(settings))
