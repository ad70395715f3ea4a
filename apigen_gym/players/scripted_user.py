"""The scripted user: plays a task's structured goal with no LLM, deterministic and offline.

It opens with the first request and answers what agents ask: who it is (from the facts it knows);
which order, reservation, trip, item, payment method, address, reason or traveller (the sentence of
its current request that says so); confirmation questions (yes); and whether it needs anything else
(the next request, or goodbye). A request that evolves (:class:`~apigen_gym.core.task.Twist`) changes
at the moment its goal names: when the agent asks to confirm, or says the cue. Whatever it cannot
place gets a reply restating its current request, never a dead end. Its wording comes from seeded
paraphrase banks: the first wording of each without a seed, a draw per seed with one.
"""

from __future__ import annotations

import re

from apigen_gym.core.reward import output_found
from apigen_gym.core.task import Goal, Request, Task, Twist
from apigen_gym.core.user import STOP, UserSimulator
from apigen_gym.players.wording import Phrasing, seed_for

GREETINGS = (
    "Hi!",
    "Hello!",
    "Hi there.",
    "Hello,",
    "Good day.",
    "Hey, hello.",
    "Good morning!",
    "Hello there.",
    "Hi, I hope you can help me.",
    "Hello, I need some help.",
)
YES = (
    "Yes, please go ahead.",
    "Yes, that's right. Please go ahead.",
    "Yes, please do that.",
    "Yes, I confirm.",
    "Sure, please proceed.",
    "Yes, go ahead, thank you.",
    "Yes, that's correct, please proceed.",
    "Yep, that all looks right. Go ahead.",
    "Yes please, do it.",
    "Confirmed, yes.",
)
"""Agreements (each an explicit yes for the policy's confirmation rule: no 'no', 'not' or 'wait')."""
EMAIL = (
    "My email is {email}.",
    "Sure, it's {email}.",
    "You can find me under {email}.",
    "It's {email}.",
    "My email address is {email}.",
    "Of course: {email}.",
    "The email on my account is {email}.",
)
NAME = ("I'm {name}.", "My name is {name}.", "Sure: {name}.", "It's {name}.", "Of course, I'm {name}.")
USER_ID = (
    "My user id is {user_id}.",
    "Sure, my user id is {user_id}.",
    "It's {user_id}.",
    "My id is {user_id}.",
    "Of course: {user_id}.",
)
NEXT = (
    "{request}",
    "Yes, one more thing. {request}",
    "Actually, yes. {request}",
    "There is. {request}",
    "Yes, there's something else. {request}",
    "One more thing, actually. {request}",
    "Yes please. {request}",
    "While I have you: {request}",
)
DONE = (
    f"No, that's all. Thank you! {STOP}",
    f"That's everything, thanks for your help! {STOP}",
    f"No, nothing else. Have a good day! {STOP}",
    f"That will be all, thank you. {STOP}",
    f"That's it for today. Thanks a lot! {STOP}",
    f"Nothing more, you've been very helpful. Bye! {STOP}",
    f"All good, thanks. Goodbye! {STOP}",
)
ACCEPT = (
    "I see. I understand.",
    "Oh well, I understand.",
    "OK, I understand. Thanks for explaining.",
    "That's a pity, but I understand.",
    "Alright, fair enough.",
    "Too bad. Thanks for checking anyway.",
)
POINT = (
    "{sentence}",
    "Sure. {sentence}",
    "Of course. {sentence}",
    "Right: {sentence}",
    "As I said: {sentence}",
)
"""Answers to 'which order / item / method...': the sentence of the current request that says it."""
RESTATE = (
    "Sorry, I don't follow. What I need is this: {request}",
    "I'm not sure what you mean. Let me repeat: {request}",
    "Sorry, I didn't quite get that. {request}",
    "Let me put it another way: {request}",
)
"""Replies to what the user cannot place: its current request again."""
STILL_WANT = (
    "Before we move on, I'm still waiting for this: {request}",
    "Wait, you haven't answered my question yet: {request}",
)
WAIT = ("Sure, take your time.", "OK, thanks.", "Alright, I'll wait.", "No rush.")
ASK_FIGURE = (
    "How much will that come to? I'd like to know before I decide.",
    "Before I decide, how much would that be?",
)
NOTHING_ELSE = (f"I have nothing else to ask. {STOP}", f"I've got nothing more to ask. {STOP}")


def _any(*alternatives: str) -> re.Pattern[str]:
    """A case-insensitive pattern for any of ``alternatives`` (regular expressions) as whole words."""
    return re.compile(rf"\b({'|'.join(alternatives)})\b", re.IGNORECASE)


_ASKS_IDENTITY = _any(
    r"e-?mail",
    "mail address",
    "zip",
    "postal code",
    "post ?code",
    "(your|full|first|last) name",
    "name on (the|your) account",
    "identity",
    "identify",
    r"authenticat\w*",
    "verify (you|your (identity|account|details))",
    "look (you|your account) up",
    "(locate|find|pull up) your (account|profile)",
    "user ?id",
    "username",
    "account (id|number)",
    "date of birth",
    "birth ?date",
    "birthday",
    "dob",
    "who (am i|i am) (speaking|talking) (with|to)",
)
_WRITE_VERBS = (
    "cancel|update|change|modify|book|process|submit|return|exchange|add|send|upgrade|move|redeem|rebook"
)
_ASKS_ACTION_CONFIRMATION = _any(
    "yes/no",
    "yes or no",
    "shall i",
    "should i",
    "may i go ahead",
    "(do|would) you (want|like) me to",
    "want me to",
    "proceed",
    "go ahead",
    "about to",
    f"i('ll| will) (now )?(go ahead|{_WRITE_VERBS})",
)
_YES_OR_NO = _any("yes/no", "yes or no")
_WH_QUESTION = re.compile(r"\b(which|what|where|who|whom|why|when|how)\b[^.!?]*\?", re.IGNORECASE)
_ASKS_CONFIRMATION = _any(
    r"confirm(?!ed|ation (number|code))\w*",
    "yes/no",
    "yes or no",
    "shall i",
    "should i",
    "proceed",
    "go ahead",
    "(do|would) you (want|like) me to",
    "want me to",
    "is (that|this|it) (correct|right|ok|okay|alright|fine)",
    "(sound|look)s? (good|right|correct)",
    "are you sure",
    "can i go ahead",
    "(ok|okay) to",
)
_ASKS_WHAT_ELSE = _any(
    "anything else",
    "something else",
    "anything more",
    "anything further",
    "what else",
    "else (i|we) can",
    "other (requests?|questions?|things?|matters?|issues?)",
    "more (i|we) can (do|help)",
    "further (assistance|help|questions?)",
    "(will|would) that be all",
    "is that (all|everything)",
    "all set",
    "any more (questions|requests)",
    "any other way",
)
_DONE_VERBS = (
    r"cancell?ed|updated|changed|modified|returned|exchanged|booked|processed|refunded|added|submitted"
    r"|placed|sent|issued|applied|saved|upgraded|moved|credited|redeemed|rebooked|insured"
)
_REPORTS_DONE = _any(
    f"((has|have) been|is now|are now) ({_DONE_VERBS})",
    "successfully",
    "all (done|set)",
    f"i('ve| have) (now )?({_DONE_VERBS})",
)
_DECLINES = _any(
    "sorry",
    "apologi[sz]e",
    "unfortunately",
    "can ?not",
    "can't",
    "unable",
    "not able",
    "not possible",
    "not allowed",
    "not permitted",
    "not eligible",
    "won't be able",
    "isn't possible",
    "against (our|the) policy",
    "(out of|outside( of)?|beyond) (my|the) scope",
    "transfer(ring)? you",
)
_CONFIRMS_A_DETAIL = _any(
    r"confirm (the|your|which) (\w+ ){0,2}(address|payment method|card|order( number| id)?|reservation( id)?"
    r"|trip( id)?|items?|flight|passengers?|driver)",
)
"""'Can you confirm the shipping address?': a question about a detail, not about going ahead."""
_ASKS_HOW_TO_HELP = _any("how (can|may) i (help|assist)", "what can i do for you")
_WAITS = _any(
    "one moment",
    "a moment",
    "just a (sec|second|minute)",
    "let me (check|look|see|pull|find|verify)",
    "i('ll| will) (check|look|pull)",
)
_ASKS = _any(
    "please (provide|tell|share|give|let me know|specify|confirm)",
    "let me know",
    "(can|could) you tell",
    "i('ll| will) need",
    "i need",
)
_TOPICS: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (  # payment method
        _any(
            r"pay\w*",
            "card",
            "gift card",
            "paypal",
            "certificate",
            "travel credit",
            r"charg\w*",
            r"refund\w*",
            "billing",
            "(price|fare) difference",
            "cover (that|it|this|the (fee|cost|difference))",
        ),
        _any(
            "card",
            "gift card",
            "paypal",
            "certificate",
            "credit",
            "points",
            r"pa(y|id|ying)",
            "charge",
            r"refund\w*",
        ),
    ),
    (  # address
        _any("address", r"ship\w*", r"deliver\w*", "send it"),
        re.compile(r"\baddress\b|\d+ [A-Z][\w ]*(Street|Avenue|Lane|Road|Drive|Court|Boulevard|Place|Way)\b"),
    ),
    (  # reason
        _any("why", "reason"),
        re.compile(r"\bbecause\b|\bsince\b|\bno longer\b|\bby mistake\b|\banymore\b|:", re.IGNORECASE),
    ),
    (  # who travels
        _any(
            "passengers?",
            "travell?ers?",
            "who (is|will be) (travell?ing|flying|going|driving)",
            r"driv(ing|er)",
            "companions?",
            "how many people",
        ),
        _any(
            "me and",
            "for me",
            "just me",
            "passengers?",
            "travell?ers?",
            "saved in my profile",
            "for both",
            r"driv(ing|er)",
        ),
    ),
    (  # which item or option
        _any(
            "items?",
            "products?",
            "which one",
            "variants?",
            "options?",
            "colou?r",
            "size",
            "model",
            "what would you like to (return|exchange|change|swap)",
        ),
        _any("return", "exchange", "change", "swap", "options?", "the one with"),
    ),
    (  # which order, reservation, trip or flight
        _any(
            "orders?",
            "reservations?",
            "bookings?",
            "trips?",
            "itinerar(y|ies)",
            "confirmation (number|code)",
            "flights?",
        ),
        re.compile(r"#W\d+|\b(order|reservation|booking|trip|flight)\b", re.IGNORECASE),
    ),
)
"""What an agent may ask about (a pattern on its question), and the sentence of the request that says it."""
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z#$0-9])")


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


def asks_to_confirm(message: str) -> bool:
    """Whether ``message`` asks the user to agree to something: not who they are ('confirm your
    email'), nor which thing ('which card would you like me to use?'), unless it asks for a yes or no."""
    if not _ASKS_CONFIRMATION.search(message):
        return False
    if _YES_OR_NO.search(message):
        return True
    if _ASKS_IDENTITY.search(message) and not _ASKS_ACTION_CONFIRMATION.search(message):
        return False
    return not _WH_QUESTION.search(message)


def canonical_opening(message: str) -> str:
    """``message`` with the scripted user's greeting, whatever it was, replaced by the first one."""
    for greeting in sorted(GREETINGS, key=len, reverse=True):  # "Hello, I need..." before "Hello,"
        if message.startswith(f"{greeting} "):
            return f"{GREETINGS[0]} {message[len(greeting) + 1 :]}"
    return message


class ScriptedUser(UserSimulator):
    """Deterministic, offline user driven by a task's :class:`Goal`."""

    name = "scripted"

    def __init__(self) -> None:
        self._goal = Goal(requests=[])
        self._current = 0
        self._words = ""
        self._fired = False
        self._asked_figure = False
        self._phrasing = Phrasing()
        self.gist = ""
        """What the last reply carried (a request, a twist, identity facts), without the wording around it."""

    def start(self, task: Task, seed: int | None = None) -> str:
        self._goal = task.effective_goal()
        self._phrasing = Phrasing(seed_for(seed, task))
        self._current = 0
        if not self._goal.requests:
            return self._reply(f"{GREETINGS[0].rstrip('!.')}. {STOP}", "")
        self._enter(0)
        return self._reply(f"{self._phrasing.pick(GREETINGS)} {self._words}", self._words)

    # --- the conversation -----------------------------------------------------------------------

    def respond(self, message: str) -> str:
        if self._current >= len(self._goal.requests):
            return self._reply(self._phrasing.pick(NOTHING_ELSE), "")
        twist = self._pending_twist()
        if twist is not None and self._moment(twist, message):
            self._fired, self._words = True, twist.text
            return self._reply(twist.text, twist.text)
        identity, facts = self._identity(message) if _ASKS_IDENTITY.search(message) else ("", "")
        if identity and not _ASKS_ACTION_CONFIRMATION.search(message):
            return self._reply(identity, facts)
        detail = _CONFIRMS_A_DETAIL.search(message) and not _ASKS_ACTION_CONFIRMATION.search(message)
        pointed = self._pointed(message) if detail else None
        if pointed:
            return self._reply(self._phrasing.say(POINT, sentence=pointed), pointed)
        if asks_to_confirm(message):
            return self._confirm(twist)
        if identity:
            return self._reply(identity, facts)
        if _ASKS_WHAT_ELSE.search(message) or (_REPORTS_DONE.search(message) and "?" not in message):
            return self._next(twist)
        if _DECLINES.search(message):
            return self._reply(self._phrasing.pick(ACCEPT), "")
        if _ASKS_HOW_TO_HELP.search(message):
            return self._reply(self._phrasing.say(POINT, sentence=self._words), self._words)
        pointed = self._pointed(message) if "?" in message or _ASKS.search(message) else None
        if pointed:
            return self._reply(self._phrasing.say(POINT, sentence=pointed), pointed)
        if _WAITS.search(message) and "?" not in message:
            return self._reply(self._phrasing.pick(WAIT), "")
        return self._reply(self._phrasing.say(RESTATE, request=self._words), self._words)

    def _reply(self, text: str, gist: str) -> str:
        self.gist = gist
        return text

    def _enter(self, number: int) -> None:
        """Make request ``number`` the current one."""
        self._current = number
        self._fired = self._asked_figure = False
        if number < len(self._goal.requests):
            self._words = self._goal.requests[number].text

    @property
    def _request(self) -> Request:
        return self._goal.requests[self._current]

    def _pending_twist(self) -> Twist | None:
        twist = self._request.twist
        return None if twist is None or self._fired else twist

    def _moment(self, twist: Twist, message: str) -> bool:
        """Whether ``message`` brings the twist's moment: a confirmation question, or the cue said."""
        if twist.when == "mention":
            return bool(twist.cue) and output_found(str(twist.cue), [message], "strict")
        return asks_to_confirm(message)

    def _confirm(self, twist: Twist | None) -> str:
        """Yes, unless the user first wants to hear the figure it will change its mind on."""
        figure_first = twist is not None and twist.kind == "change_of_mind" and twist.when == "mention"
        if figure_first and not self._asked_figure:
            self._asked_figure = True
            return self._reply(self._phrasing.pick(ASK_FIGURE), "")
        return self._reply(self._phrasing.pick(YES), "")

    def _next(self, twist: Twist | None) -> str:
        """The next request, or goodbye; an answer still owed (a follow-up's) is asked for first."""
        if twist is not None and twist.kind == "follow_up":
            return self._reply(self._phrasing.say(STILL_WANT, request=self._words), self._words)
        self._enter(self._current + 1)
        if self._current < len(self._goal.requests):
            return self._reply(self._phrasing.say(NEXT, request=self._words), self._words)
        return self._reply(self._phrasing.pick(DONE), "")

    def _pointed(self, message: str) -> str | None:
        """The sentence of the current request about what ``message`` asks (payment, order...), if any."""
        parts = sentences(self._words)
        for asked, said in _TOPICS:
            if asked.search(message):
                found = [s for s in parts if said.search(s)]
                if found:
                    return " ".join(found)
        return None

    def _identity(self, message: str) -> tuple[str, str]:
        """The identifying facts the agent asked for, said and bare: the email, else the name with a
        zip code or a birth date, else a user id; empty when the user knows none."""
        known = self._goal.known
        by_name = "first_name" in known and "last_name" in known
        wants_email = re.search(r"e-?mail", message, re.I) is not None
        if "email" in known and (wants_email or not by_name):
            return self._phrasing.say(EMAIL, email=known["email"]), known["email"]
        if by_name:
            details = [f"{label} {known[key]}" for key, label in _NAME_DETAILS if key in known]
            who = f"{known['first_name']} {known['last_name']}" + "".join(f", {d}" for d in details)
            return self._phrasing.say(NAME, name=who), who
        if "user_id" in known:
            return self._phrasing.say(USER_ID, user_id=known["user_id"]), known["user_id"]
        return "", ""


_NAME_DETAILS = (("zip", "zip code"), ("birth_date", "born on"))
"""Facts that go with a name to identify someone, and how the user says them."""


def replies_match(expected: str, gist: str, actual: str) -> bool:
    """Whether ``actual`` is a reply the scripted user could have given where it said ``expected``:
    the same text, or any wording carrying the same gist (a seeded user words things differently)."""
    if actual == expected:
        return True
    return (STOP in actual) == (STOP in expected) and (not gist or gist in actual)
