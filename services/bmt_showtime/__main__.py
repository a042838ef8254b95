"""`python -m bmt_showtime`: run the showtime service."""

from bmt_common.runner import serve
from bmt_showtime.app import make_app
from bmt_showtime.settings import ShowtimeSettings

settings = ShowtimeSettings()
serve("showtime", settings, lambda: make_app(settings))
