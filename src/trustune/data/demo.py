"""The demo data set: short customer-support requests labeled by intent, written by trustune.

Every text is composed here from templates and fillers (no third-party text). Many
templates borrow words of another class (a billing question naming an order, a
technical fault on the account page), and a small share of requests are genuinely
ambiguous between two intents, as real tickets are, so a model has to read the
sentence and cannot reach 100 % accuracy.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path

from trustune.artifact import atomic_file
from trustune.errors import ConfigError

__all__ = ["DEMO_LABELS", "generate_demo_rows", "write_demo_dataset"]

DEMO_LABELS: tuple[str, ...] = ("billing", "technical", "shipping", "account")

_MIN_WORDS = 5
_MAX_WORDS = 40
_AMBIGUOUS_RATE = 0.15
_TYPO_RATE = 0.08

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "billing": (
        "I was charged {amount} twice for order {order}. Can you refund one of the payments?",
        "Why does my invoice for {month} show {amount}? My {plan} plan is supposed to be cheaper.",
        "My card was declined when I tried to pay for the {plan} plan, but my bank says the card is fine.",
        "I cancelled my subscription on {date} and you still billed me {amount}.",
        "Can I get a receipt for the {amount} payment I made {date}?",
        "The refund for the {product} I sent back has still not reached my card.",
        "I'd like to switch from monthly to yearly billing. Is there a discount for paying upfront?",
        "There is a charge of {amount} on my bank statement that I don't recognise.",
        "You charged me a {amount} delivery fee although free shipping is included in {plan}.",
        "My account shows an unpaid balance of {amount}, but I paid it {date}.",
        "How do I replace the credit card you have on file? The old one expired.",
        "Do you accept bank transfer or PayPal for the {plan} plan?",
        "The promo code {promo} did not apply at checkout and I paid the full {amount}.",
        "I need a VAT invoice for order {order} with our company name on it.",
        "Why was I charged {amount} when my free trial ended? I never agreed to renew.",
        "What is the extra {amount} fee on my latest bill?",
        "The website listed the {product} at {amount} but my card was charged more.",
        "Please stop charging me, I downgraded to the free plan {date}.",
        "Can I pay for order {order} in instalments?",
        "I was billed for {seats} seats on the {plan} plan but we only use two.",
        "Is the {amount} pending on my card a real charge or just an authorisation?",
        "Your price went up to {amount} a month without any notice. Why?",
        "The money for the cancelled order {order} has not been returned yet.",
        "Could you refund the {amount} I paid for the upgrade? It was a mistake.",
    ),
    "technical": (
        "The app crashes every time I open {area} on my {device}.",
        "The login page stays blank in {browser}, the other sites load fine.",
        "The payment page keeps loading forever on my {device}, so I can't finish checkout.",
        "After the last update my {gadget} won't pair with my phone anymore.",
        "My {gadget} drops the Bluetooth connection every few minutes.",
        "The tracking page shows error {error} when I paste my order number.",
        "Sync between my {device} and the web app stopped working {date}.",
        "The account settings page is completely empty in {browser}.",
        "Push notifications stopped arriving on my {device} since version {version}.",
        "The firmware update for the {gadget} failed at {percent}% and now it won't turn on.",
        "Uploading anything bigger than {size} MB ends with a timeout.",
        "Why is the app so slow on my {device}? Every screen takes {days} seconds to open.",
        "How do I reset the {gadget} to factory settings? It freezes all the time.",
        "The download button for invoices does nothing in {browser}.",
        "Search returns no results, even for products I know you sell.",
        "In dark mode the text on {area} is unreadable on my {device}.",
        "Exporting my data to CSV gives an empty file.",
        "I keep getting error {error} when I open {area}.",
        "The {gadget} app shows a white screen after the splash logo on my {device}.",
        "The video tutorials won't play in {browser}, it just spins.",
        "My {gadget} reboots by itself several times a day.",
        "Voice control on my {gadget} stopped working after version {version}.",
        "The order confirmation page throws error {error} right after I place an order.",
        "Is there a known bug with {area}? It freezes on my {device}.",
    ),
    "shipping": (
        "My order {order} should have arrived {date} but it is still not here.",
        "The tracking for order {order} has not changed in {days} days.",
        "Can I change the delivery address for order {order}? It has not shipped yet.",
        "The {product} arrived damaged, the box was completely crushed.",
        "I ordered the {product} and received something else entirely.",
        "Do you deliver to {country}, and how long does it usually take?",
        "{carrier} says the parcel was delivered but nothing came to my door.",
        "I paid {amount} for express delivery and the parcel still took {days} days.",
        "One item is missing from my package, order {order}.",
        "How do I send back the {product}? I need a return label.",
        "My package has been stuck in customs for {days} days, what should I do?",
        "Could orders {order} and {order2} be sent together in one box?",
        "Can I collect my order from a pickup point instead of home delivery?",
        "The courier came while I was at work. Can delivery be rescheduled for {date}?",
        "My account says order {order} shipped but {carrier} has no record of it.",
        "When will the {product} be back in stock and sent out?",
        "Is it possible to upgrade order {order} to next-day delivery?",
        "The parcel for order {order} was left outside in the rain.",
        "Which courier do you use for deliveries to {country}?",
        "I received the {product} twice but only ordered one. How do I send the extra back?",
        "Has order {order} left your warehouse yet? It's been {days} days.",
        "The delivery estimate for my {product} keeps moving back.",
        "Can I add a second item to order {order} before it ships?",
        "Where is my package? The last tracking update was {date}.",
    ),
    "account": (
        "I forgot my password and the reset e-mail never arrives.",
        "How do I change the e-mail address on my account to {email}?",
        "Please delete my account and all the data you have about me.",
        "Someone logged into my account from {country}. I think it was hacked.",
        "I can't turn on two-factor authentication, the code from my {device} is rejected.",
        "I have two accounts, {email} and {email2}. Can you merge them?",
        "My account got locked after too many sign-in attempts.",
        "How can I change the username shown on my profile?",
        "I want to update the phone number linked to my account.",
        "My order history is gone since I changed my e-mail address.",
        "How do I add a colleague as a second user on our {plan} account?",
        "Can I download a copy of all the personal data you store about me?",
        "I never signed up, yet {email} keeps getting messages that an account was created.",
        "How do I stop the newsletter but keep my account?",
        "The saved addresses in my profile have disappeared.",
        "I want to close my account, but I still have {amount} of store credit.",
        "The verification code by text message never reaches my phone.",
        "Can I change the name on my account? I got married.",
        "I signed up with {email} by mistake, it should be {email2}.",
        "How do I remove a device I no longer use from my account?",
        "My password was changed {date} and it wasn't me.",
        "Is there a way to log out of all sessions at once?",
        "Can a parent manage my child's profile under the {plan} plan?",
        "I can't remember which e-mail I used to register. Can you look it up?",
    ),
}

_AMBIGUOUS: tuple[tuple[tuple[str, str], str], ...] = (
    (("billing", "shipping"), "Order {order} never arrived and I was still charged {amount}."),
    (("billing", "shipping"), "I returned the {product} {date}. When will I see my money?"),
    (("billing", "account"), "I can't find where to change my payment details in my profile."),
    (("billing", "account"), "My {plan} subscription is gone from my account after I renewed it."),
    (("technical", "account"), "I can't sign in, the page just says error {error}."),
    (("technical", "account"), "The app logs me out every few minutes on my {device}."),
    (("technical", "shipping"), "The tracking link in my confirmation e-mail doesn't work."),
    (("technical", "shipping"), "The {gadget} arrived today but it won't switch on at all."),
    (
        ("billing", "technical"),
        "Checkout failed with error {error} but the money left my bank anyway.",
    ),
    (("billing", "technical"), "I paid {amount} for an add-on and it never unlocked in the app."),
    (
        ("shipping", "account"),
        "I changed my address in my profile but order {order} went to the old one.",
    ),
    (
        ("shipping", "account"),
        "Order {order} doesn't appear in my account although I got a confirmation.",
    ),
    (
        ("billing", "shipping"),
        "Can I get the {amount} delivery charge back? It came {days} days late.",
    ),
    (("billing", "account"), "Why does my account still say Basic when I paid for {plan}?"),
    (("technical", "account"), "The password reset link opens a broken page."),
    (("technical", "shipping"), "The address form rejects my postcode, so I can't pick delivery."),
    (
        ("billing", "technical"),
        "The app says I owe {amount} but my bank shows the payment went through.",
    ),
    (("shipping", "account"), "How do I set a default delivery address on my account?"),
)

# fmt: off
_OPENERS = (
    "", "", "", "", "Hi,", "Hello,", "Hi there,", "Hey,", "Good morning,", "Hello team,",
    "Quick question.", "Sorry to bother you.", "Hi support,", "Dear support team,", "Urgent:",
)
_CLOSERS = (
    "", "", "", "", "Thanks.", "Thank you!", "Please help.", "Thanks in advance.",
    "Any help is appreciated.", "Cheers.", "This is really frustrating.", "Please advise.",
    "Can someone get back to me today?", "Regards, Test User", "Thx", "Kind regards.",
)
_PRODUCTS = (
    "wireless earbuds", "smart thermostat", "coffee grinder", "laptop stand", "fitness tracker",
    "desk lamp", "phone case", "robot vacuum", "e-reader", "webcam", "mechanical keyboard",
    "air purifier", "mesh router", "smart speaker", "blender", "backpack", "baby monitor",
    "electric toothbrush", "doorbell camera", "gaming headset",
)
_GADGETS = (
    "smart thermostat", "fitness tracker", "webcam", "mechanical keyboard", "mesh router",
    "smart speaker", "baby monitor", "doorbell camera", "gaming headset", "robot vacuum",
    "e-reader", "smartwatch",
)
_DEVICES = (
    "iPhone", "Android phone", "Pixel", "Galaxy phone", "iPad", "Android tablet",
    "Windows laptop", "MacBook", "Chromebook", "work PC",
)
_BROWSERS = ("Chrome", "Firefox", "Safari", "Edge", "Opera")
_AREAS = (
    "the settings screen", "my cart", "the checkout", "the dashboard", "the photo gallery",
    "the chat window", "the wishlist", "the help center", "the reports tab",
)
_CARRIERS = ("ParcelJet", "SwiftPost", "the courier", "QuickShip Express", "the delivery driver")
_COUNTRIES = ("Canada", "Norway", "Japan", "Brazil", "Ireland", "New Zealand", "Mexico", "Poland")
_PLANS = ("Basic", "Plus", "Pro", "Family", "Business", "Premium")
_PROMOS = ("SAVE10", "WELCOME15", "SPRING20", "FREESHIP", "LOYAL5")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_RELATIVE_DATES = ("yesterday", "last week", "on Monday", "two weeks ago", "last Friday", "today")
_NAMES = ("jane.doe", "john.example", "test.user", "alex.sample", "sam.placeholder", "demo.person")
_DOMAINS = ("example.com", "example.org", "example.net")
# fmt: on


def _fillers(rng: random.Random) -> dict[str, str]:
    """Draw one value for every template slot."""
    currency = rng.choice(("$", "€", "£", "$"))
    cents = rng.choice(("00", "99", "49", "95", "50"))
    amount = f"{currency}{rng.randint(4, 320)}.{cents}"
    if rng.random() < 0.2:
        amount = f"{currency}{rng.randint(4, 320)}"
    date = rng.choice(_RELATIVE_DATES)
    if rng.random() < 0.6:
        date = f"on {rng.choice(_MONTHS)} {rng.randint(1, 28)}"
    fmt = rng.choice(("#{}", "#{}", "TS-{}", "{}"))
    emails = [f"{rng.choice(_NAMES)}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}" for _ in range(2)]
    return {
        "amount": amount,
        "order": fmt.format(rng.randint(100000, 999999)),
        "order2": fmt.format(rng.randint(100000, 999999)),
        "date": date,
        "month": rng.choice(_MONTHS),
        "product": rng.choice(_PRODUCTS),
        "gadget": rng.choice(_GADGETS),
        "device": rng.choice(_DEVICES),
        "browser": rng.choice(_BROWSERS),
        "area": rng.choice(_AREAS),
        "carrier": rng.choice(_CARRIERS),
        "country": rng.choice(_COUNTRIES),
        "plan": rng.choice(_PLANS),
        "promo": rng.choice(_PROMOS),
        "error": rng.choice(("E", "ERR-", "code ")) + str(rng.randint(100, 999)),
        "version": f"{rng.randint(2, 9)}.{rng.randint(0, 12)}",
        "percent": str(rng.randint(5, 95)),
        "size": str(rng.choice((5, 10, 20, 25, 50, 100))),
        "days": str(rng.randint(3, 21)),
        "seats": str(rng.randint(3, 12)),
        "email": emails[0],
        "email2": emails[1],
    }


def _typo(text: str, rng: random.Random) -> str:
    """Introduce one plausible typing mistake into a word of four letters or more."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    word = words[i]
    j = rng.randint(1, len(word) - 2)
    kind = rng.randrange(3)
    if kind == 0:
        word = word[:j] + word[j + 1] + word[j] + word[j + 2 :]
    elif kind == 1:
        word = word[:j] + word[j + 1 :]
    else:
        word = word[:j] + word[j] + word[j:]
    words[i] = word
    return " ".join(words)


def _compose(label: str, rng: random.Random) -> str:
    """Write one support request whose intent is ``label``."""
    if rng.random() < _AMBIGUOUS_RATE:
        body = rng.choice([t for pair, t in _AMBIGUOUS if label in pair])
    else:
        body = rng.choice(_TEMPLATES[label])
    opener = rng.choice(_OPENERS)
    if opener.endswith(",") and not body.startswith(("{", "I ", "I'")) and rng.random() < 0.7:
        body = body[0].lower() + body[1:]
    body = body.format_map(_fillers(rng))
    parts = [opener, body, rng.choice(_CLOSERS)]
    text = " ".join(p for p in parts if p)
    roll = rng.random()
    if roll < 0.06:
        text = text.lower()
    elif roll < 0.12:
        text = text.rstrip(".!")
    if rng.random() < _TYPO_RATE:
        text = _typo(text, rng)
    return text


def generate_demo_rows(*, rows: int = 800, seed: int = 0) -> list[tuple[str, str]]:
    """Return ``rows`` distinct (text, label) pairs, classes balanced, reproducible from ``seed``."""
    if rows < 2 * len(DEMO_LABELS):
        raise ConfigError(f"rows: {rows} is too few, the demo data set needs at least 8")
    rng = random.Random(seed)
    labels = [DEMO_LABELS[i % len(DEMO_LABELS)] for i in range(rows)]
    rng.shuffle(labels)
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for label in labels:
        for _ in range(1000):
            text = _compose(label, rng)
            if text not in seen and _MIN_WORDS <= len(text.split()) <= _MAX_WORDS:
                break
        else:
            raise ConfigError(f"rows: cannot write {rows} distinct demo texts, ask for fewer")
        seen.add(text)
        out.append((text, label))
    return out


def _split(
    data: Sequence[tuple[str, str]], test_fraction: float
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split rows per class so each class keeps ``test_fraction`` of its rows for testing."""
    by_label: dict[str, list[int]] = {}
    for i, (_, label) in enumerate(data):
        by_label.setdefault(label, []).append(i)
    test_idx: set[int] = set()
    for indices in by_label.values():
        n_test = min(max(1, round(len(indices) * test_fraction)), len(indices) - 1)
        test_idx.update(indices[:n_test])
    train = [row for i, row in enumerate(data) if i not in test_idx]
    test = [row for i, row in enumerate(data) if i in test_idx]
    return train, test


def _write_csv(path: Path, data: Sequence[tuple[str, str]]) -> None:
    """Write ``text,label`` rows to ``path`` atomically (temporary file, then rename)."""
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(("text", "label"))
        writer.writerows(data)


def write_demo_dataset(
    directory: Path, *, rows: int = 800, seed: int = 0, test_fraction: float = 0.2
) -> tuple[Path, Path]:
    """Write ``support_train.csv`` and ``support_test.csv`` into ``directory``; return both paths."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction: {test_fraction!r} must lie strictly between 0 and 1")
    train, test = _split(generate_demo_rows(rows=rows, seed=seed), test_fraction)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    train_path = directory / "support_train.csv"
    test_path = directory / "support_test.csv"
    _write_csv(train_path, train)
    _write_csv(test_path, test)
    return train_path, test_path
