"""`bridge demo`: a scripted Beckn BAP that plays the charging journeys against a running
bridge, worker and mock CPO, and prints what the driver sees and the calls behind it.

    bap.py       the demo BAP's HTTP side: registry lookup, on_* callbacks, tracking PATCHes
    client.py    what the BAP sends: signed Beckn requests, the payment page, the mock's admin API
    view.py      reading the bridge's order shapes (bridge/journey/wire.py) as a BAP would
    steps.py     the steps every journey shares (select, init, pay, confirm, start, bill)
    journeys.py  the four journeys and the runner
    render.py    the readable output
"""
