"""Untrusted text (model output, Hub answers, files a user was handed) made safe to show: one
module per medium. The HTML page escapes through its template engine (``matrix/html.py``)."""
