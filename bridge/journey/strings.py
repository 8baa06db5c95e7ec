"""The driver pages' words in English and Hindi: one table per language, no framework.

`choose()` picks the language: `?lang=` if it names one we have, else the best
match in `Accept-Language` (RFC 9110 §12.5.4: quality values, a `hi-IN` range
matches `hi`), else English. `text()` fills a string's `{placeholders}`; a test
checks that both tables have the same keys and the same placeholders.

The bill's line titles are not here: they are the pricing engine's own words,
the same text as the `on_update` that carried the bill (the pages mark them
`lang="en"` on a Hindi page so a screen reader pronounces them right).
"""

from __future__ import annotations

DEFAULT = "en"

# Each language's name in itself, for the switch.
NAMES = {"en": "English", "hi": "हिन्दी"}

EN: dict[str, str] = {
    "language": "Language",
    "order": "Order {number}",
    "title_track": "Charging, order {number}",
    "charger_heading": "Charger and place",
    "charger": "Charger",
    "connector": "Connector",
    "location": "Location",
    "slot": "Your slot",
    "status": "Status",
    "status_quoted": "Price quoted: not booked yet",
    "status_initialized": "Waiting for payment and confirmation",
    "status_payment": "Payment in progress",
    "status_confirmed": "Booked: charging starts when the start code is entered",
    "status_reserved": "Charger reserved for your slot",
    "status_charging": "Charging in progress",
    "status_interrupted": "Connection to the charger lost. Retrying automatically; "
                          "if this goes on, check your cable.",
    "status_finishing": "Charging finished: your final bill is being prepared",
    "status_completed": "Charging complete",
    "status_cancelled": "Booking cancelled",
    "status_expired": "Slot released: the car did not arrive in time",
    "status_failed": "The charger could not start charging",
    "now_heading": "Charging now",
    "delivered_heading": "What was delivered",
    "energy": "Energy delivered",
    "duration": "Duration",
    "cost_so_far": "Charging cost so far",
    "cost_note": "The charge point operator's price so far. Fees and offers are added "
                 "in the final bill.",
    "quote_heading": "Quote",
    "estimated_energy": "Estimated energy",
    "quoted_total": "Quoted total",
    "unused_back": "What is not used is given back after charging.",
    "bill_heading": "Final bill",
    "bill_caption": "Every line of the final bill",
    "item": "Item",
    "amount": "Amount",
    "total": "Total",
    "payments_heading": "Payments",
    "paid": "You paid",
    "held": "Held on your account",
    "captured": "Taken from the hold",
    "released": "Hold released",
    "refunded": "Refunded to you",
    "top_up_due": "Still to pay (top-up)",
    "top_up_paid": "Top-up paid",
    "top_up_hint": "The payment link for it was sent to you by SMS and in your app.",
    "credit": "Credit from the operator",
    "provisional": "Provisional bill on the charger's last reading: the operator's final "
                   "record may still change it.",
    "nothing_charged": "Nothing was charged.",
    "updated": "Updated {time}",
    "auto_update": "This page updates by itself every {seconds} seconds.",
    "offline": "Cannot reach the server; retrying…",
    "dur_hm": "{h} h {m} min",
    "dur_ms": "{m} min {s} s",
    "dur_s": "{s} s",
    "title_pay": "Payment for order {number}",
    "title_top_up": "Top-up for order {number}",
    "sandbox": "Development payment gateway: no real money moves.",
    "to_pay": "Amount to pay",
    "to_hold": "Amount to hold",
    "hold_note": "Only the final bill is taken from the hold; the rest is released.",
    "pay_button": "Pay {amount}",
    "hold_button": "Authorise a hold of {amount}",
    "done_paid": "Paid: {amount}",
    "done_held": "Hold placed: {amount}",
    "done_closed": "This payment is closed.",
    "owed_heading": "What you owe",
    "top_up_owed": "The final bill is more than what was collected before charging; "
                   "this is the difference.",
}

HI: dict[str, str] = {
    "language": "भाषा",
    "order": "ऑर्डर {number}",
    "title_track": "चार्जिंग, ऑर्डर {number}",
    "charger_heading": "चार्जर और जगह",
    "charger": "चार्जर",
    "connector": "कनेक्टर",
    "location": "स्थान",
    "slot": "आपका स्लॉट",
    "status": "स्थिति",
    "status_quoted": "कीमत बताई गई: अभी बुक नहीं हुआ",
    "status_initialized": "भुगतान और पुष्टि की प्रतीक्षा है",
    "status_payment": "भुगतान हो रहा है",
    "status_confirmed": "बुक हो गया: स्टार्ट कोड डालने पर चार्जिंग शुरू होगी",
    "status_reserved": "आपके स्लॉट के लिए चार्जर आरक्षित है",
    "status_charging": "चार्जिंग चल रही है",
    "status_interrupted": "चार्जर से संपर्क टूट गया है। अपने-आप फिर से कोशिश हो रही है; "
                          "अगर ऐसा होता रहे तो अपनी केबल जाँचें।",
    "status_finishing": "चार्जिंग पूरी हुई: आपका अंतिम बिल तैयार हो रहा है",
    "status_completed": "चार्जिंग पूरी हुई",
    "status_cancelled": "बुकिंग रद्द हुई",
    "status_expired": "स्लॉट छोड़ दिया गया: गाड़ी समय पर नहीं पहुँची",
    "status_failed": "चार्जर चार्जिंग शुरू नहीं कर सका",
    "now_heading": "अभी की चार्जिंग",
    "delivered_heading": "कितनी चार्जिंग हुई",
    "energy": "दी गई ऊर्जा",
    "duration": "अवधि",
    "cost_so_far": "अब तक चार्जिंग का खर्च",
    "cost_note": "अब तक की चार्ज पॉइंट ऑपरेटर की कीमत। शुल्क और ऑफ़र अंतिम बिल में "
                 "जोड़े जाते हैं।",
    "quote_heading": "अनुमानित कीमत",
    "estimated_energy": "अनुमानित ऊर्जा",
    "quoted_total": "अनुमानित कुल राशि",
    "unused_back": "जो राशि इस्तेमाल नहीं होगी, वह चार्जिंग के बाद लौटा दी जाएगी।",
    "bill_heading": "अंतिम बिल",
    "bill_caption": "अंतिम बिल की हर मद",
    "item": "मद",
    "amount": "राशि",
    "total": "कुल",
    "payments_heading": "भुगतान",
    "paid": "आपने भुगतान किया",
    "held": "आपके खाते पर रोकी गई राशि",
    "captured": "रोकी गई राशि से लिया गया",
    "released": "रोक हटाई गई",
    "refunded": "आपको लौटाया गया",
    "top_up_due": "अभी भुगतान बाकी (टॉप-अप)",
    "top_up_paid": "टॉप-अप का भुगतान हो गया",
    "top_up_hint": "इसका भुगतान लिंक आपको SMS और ऐप में भेजा गया है।",
    "credit": "ऑपरेटर से क्रेडिट",
    "provisional": "चार्जर की आखिरी रीडिंग पर अस्थायी बिल: ऑपरेटर के अंतिम रिकॉर्ड से यह "
                   "अभी बदल सकता है।",
    "nothing_charged": "कोई शुल्क नहीं लिया गया।",
    "updated": "{time} पर अपडेट किया गया",
    "auto_update": "यह पेज हर {seconds} सेकंड में अपने-आप अपडेट होता है।",
    "offline": "सर्वर से संपर्क नहीं हो पा रहा; फिर से कोशिश हो रही है…",
    "dur_hm": "{h} घंटा {m} मिनट",
    "dur_ms": "{m} मिनट {s} सेकंड",
    "dur_s": "{s} सेकंड",
    "title_pay": "ऑर्डर {number} का भुगतान",
    "title_top_up": "ऑर्डर {number} का टॉप-अप",
    "sandbox": "परीक्षण भुगतान गेटवे: असली पैसा नहीं कटता।",
    "to_pay": "देय राशि",
    "to_hold": "रोकी जाने वाली राशि",
    "hold_note": "रोकी गई राशि में से केवल अंतिम बिल लिया जाएगा; बाकी छोड़ दी जाएगी।",
    "pay_button": "{amount} का भुगतान करें",
    "hold_button": "{amount} रोकने की अनुमति दें",
    "done_paid": "भुगतान हो गया: {amount}",
    "done_held": "राशि रोकी गई: {amount}",
    "done_closed": "यह भुगतान बंद हो चुका है।",
    "owed_heading": "आपको कितना देना है",
    "top_up_owed": "अंतिम बिल चार्जिंग से पहले ली गई राशि से ज़्यादा है; यह उसका अंतर है।",
}

TABLES: dict[str, dict[str, str]] = {"en": EN, "hi": HI}


def choose(query_lang: str | None, accept_language: str | None) -> str:
    """`?lang=` when we have it; else the best `Accept-Language` range we have; else English."""
    if query_lang:
        wanted = query_lang.strip().lower().split("-")[0]
        if wanted in TABLES:
            return wanted
    best, best_q = DEFAULT, -1.0
    for part in (accept_language or "").split(",")[:20]:  # a bounded header: bounded work
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in TABLES and q > 0 and q > best_q:
            best, best_q = primary, q  # the first of equal quality wins
    return best


def text(lang: str, key: str, **values: str) -> str:
    """The string `key` in `lang` (English if `lang` is not ours), placeholders filled."""
    s = TABLES.get(lang, EN)[key]
    return s.format(**values) if values else s
