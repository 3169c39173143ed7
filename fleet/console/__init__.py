"""The web console at ``/``: server-rendered pages over the same services as the API.

Views read with the API's own filters and querysets and act through the services; no
view holds domain logic. ``access.py`` is the one table of the role each action needs
(checked on the server whatever a page shows, refusals audited), ``errors.py`` turns
the services' refusals into messages, ``live.py`` reads a rollout for its live page,
``charts.py`` draws bar charts as SVG. Pages: ``views/<area>.py`` with templates under
``templates/console/<area>/``; plain CSS and script in ``static/console/`` (no build).

A new area (drift, reports) is a view module, its routes in ``urls.py``, a
``nav_link`` line in ``base.html``; a new part of a cluster's page is one more card
in ``clusters/detail.html``, fed by the view's context.
"""
