"""Password hashing with argon2id (argon2-cffi), and the minimum strength we accept."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask_babel import lazy_gettext as _l

_hasher = PasswordHasher()

# A hash of a random password, verified when no account matches the email, so a failed
# login takes as long whether or not the account exists.
_DUMMY_HASH = _hasher.hash("flautim-no-such-account")

# The passwords every guessing list starts with (and the ones Portuguese speakers pick).
# Compared after lower-casing and dropping trailing digits/punctuation.
COMMON_PASSWORDS = frozenset(
    """
    password passw0rd passwort senha senhasenha minhasenha minha senha123 password123
    qwerty qwertyuiop asdfghjkl zxcvbnm azerty qwerty123 1q2w3e4r 1qaz2wsx
    123456 1234567 12345678 123456789 1234567890 0987654321 111111 000000 121212 123123
    abc123 abcdef abcdefgh abcdefghij iloveyou letmein welcome welcome1 monkey dragon
    football baseball soccer futebol flamengo corinthians palmeiras saopaulo vasco gremio
    master shadow sunshine princess trustno1 superman batman starwars pokemon
    admin administrator administrador root toor changeme mudar mudar123 trocar
    flautim flautimflautim teste testando test tester brasil brazil amor amorzinho
    jesus jesuscristo deusefiel familia felicidade saudade beijo chocolate
    """.split()
)


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
    core = lowered.rstrip("0123456789!@#$%&*.?_- ")
    if lowered in COMMON_PASSWORDS or core in COMMON_PASSWORDS or lowered.replace(" ", "") in COMMON_PASSWORDS:
        return str(_l("Esta senha é comum demais e seria adivinhada rapidamente. Escolha outra."))
    email = email.strip().lower()
    if email and (lowered == email or lowered == email.split("@")[0]):
        return str(_l("A senha não pode ser igual ao seu email."))
    if name and lowered.replace(" ", "") == name.strip().lower().replace(" ", ""):
        return str(_l("A senha não pode ser igual ao seu nome."))
    if len(set(lowered)) < 4 or _is_sequence(lowered):
        return str(_l("A senha é trivial demais (poucos caracteres diferentes ou uma sequência)."))
    return None


def _is_sequence(text: str) -> bool:
    """Runs like "abcdefghij", "1234567890" or "9876543210"."""
    steps = {ord(b) - ord(a) for a, b in zip(text, text[1:], strict=False)}
    return len(steps) == 1 and steps.pop() in (1, -1)
