"""The sandbox's HTML pages: the pay pages with their two buttons, and the refusal page."""

from __future__ import annotations

from html import escape

from aiohttp import web

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}
dt{{font-weight:bold}} button{{font-size:1.1rem;margin-right:1rem}}</style></head>
<body><h1>{title}</h1><p><em>BMT sandbox: no money moves.</em></p>{body}</body></html>"""


def page(title: str, body: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(title=escape(title), body=body), status=status, content_type="text/html"
    )


def refused(title: str, reason: str) -> web.Response:
    return page(title, f"<p>The request was refused: <strong>{escape(reason)}</strong></p>", 400)


def pay_form(
    title: str, facts: dict[str, str], action: str, hidden: dict[str, str]
) -> web.Response:
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in facts.items())
    fields = "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in hidden.items()
    )
    body = (
        f"<dl>{items}</dl>"
        f'<form method="post" action="{escape(action)}">{fields}'
        '<button name="outcome" value="success">Pay</button>'
        '<button name="outcome" value="failed">Cancel</button></form>'
    )
    return page(title, body)
