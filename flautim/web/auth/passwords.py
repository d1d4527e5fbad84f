"""Password hashing with argon2id (argon2-cffi), and the minimum strength we accept."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l

_hasher = PasswordHasher()

# A hash of a random password, verified when no account matches the email, so a failed
# login takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("flautim-no-such-account")

# zxcvbn's score (0-4) a password must reach: 3 is "safely unguessable", about 10^10
# guesses, which a slow hash such as argon2id puts far out of reach offline.
MIN_SCORE = 3
# Words of this site a guesser would try first, beside the user's own email and name.
SITE_WORDS = ("flautim", "senha")
# zxcvbn's time grows with the length; what is past this is only stronger.
ESTIMATED_CHARS = 100


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if `password` matches. With no hash, still spends the time of one check."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def password_problem(password: str, min_length: int, email: str = "", name: str = "") -> str | None:
    """Why `password` is too weak to accept (a translated sentence), or None if it will do."""
    if len(password) < min_length:
        return str(_l("A senha precisa ter pelo menos %(n)d caracteres.", n=min_length))
    if len(password) > 1024:
        return str(_l("A senha pode ter no máximo 1024 caracteres."))
    lowered = password.lower()
    email = email.strip().lower()
    if email and (lowered == email or lowered == email.split("@")[0]):
        return str(_l("A senha não pode ser igual ao seu email."))
    if name and lowered.replace(" ", "") == name.strip().lower().replace(" ", ""):
        return str(_l("A senha não pode ser igual ao seu nome."))
    # Loaded only by the few pages that set a password: its dictionaries are large.
    from zxcvbn import zxcvbn

    user_words = [email, email.split("@")[0], *name.split(), *SITE_WORDS]
    estimate = zxcvbn(password[:ESTIMATED_CHARS], user_inputs=[w for w in user_words if w])
    if estimate["score"] >= MIN_SCORE:
        return None
    patterns = {match["pattern"] for match in estimate["sequence"]}
    if "dictionary" not in patterns and patterns & {"repeat", "sequence", "spatial"}:
        return str(_l("A senha é trivial demais (poucos caracteres diferentes ou uma sequência)."))
    return str(_l("Esta senha é comum demais e seria adivinhada rapidamente. Escolha outra."))
