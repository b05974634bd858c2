"""Who counts as one person: user ids kept only as salted hashes, and the key each conversation counts under.

Published aggregates need `privacy.k_users` distinct people as well as `analyze.suppression_k`
conversations (as Clio does), so that one account with thirty conversations cannot make a group
look large. The user or account id (`--user-field`) is hashed with HMAC-SHA256 under a salt the
moment it is read; the clear id is never stored. A conversation without a user id counts as its
own user.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SALT_FILE = "_user_salt"
SALT_BYTES = 32
USER_KEY = "user_key"


class SaltError(RuntimeError):
    """The salt cannot be read or kept: hashes would not be stable across runs."""


@dataclass(frozen=True)
class UserHasher:
    """Reads the user id from a parsed record and hashes it; picklable, so it ships to Spark tasks."""

    field: str
    salt: bytes

    def __repr__(self) -> str:  # the salt is a secret: never in a log line or a traceback
        return f"UserHasher(field={self.field!r}, salt=<{len(self.salt)} bytes>)"

    def user_hash(self, record: dict[str, Any]) -> str | None:
        """The salted hash of the record's user id, or None when the record has none."""
        value = record.get(self.field)
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            return None
        text = value.strip() if isinstance(value, str) else str(value)
        return hash_user(text, self.salt) if text else None


def hash_user(user_id: str, salt: bytes) -> str:
    """HMAC-SHA256 of the id under the salt: without the salt a hash cannot be reversed by guessing ids."""
    return hmac.new(salt, user_id.encode("utf-8", "replace"), hashlib.sha256).hexdigest()


def user_keys(conversations: DataFrame) -> DataFrame:
    """(conversation_id, user_key): the user a conversation counts under, itself when it has no user."""
    return conversations.select("conversation_id", _user_key(F.col("user_hash")).alias(USER_KEY))


def with_user_keys(frame: DataFrame, users: DataFrame | None) -> DataFrame:
    """`frame` with a `user_key` column; without `users` every conversation is its own user."""
    if users is None:
        return frame.withColumn(USER_KEY, _user_key(F.lit(None).cast("string")))
    keyed = frame.join(users.withColumnRenamed(USER_KEY, "_user_key"), "conversation_id", "left")
    return keyed.withColumn(USER_KEY, F.coalesce(F.col("_user_key"), _user_key(F.lit(None)))).drop("_user_key")


def _user_key(user_hash: Any) -> Any:
    # Prefixed so that a conversation id can never collide with a user hash.
    return F.coalesce(F.concat(F.lit("u:"), user_hash), F.concat(F.lit("c:"), F.col("conversation_id")))


def resolve_salt(env_name: str, output_dir: str) -> bytes:
    """The salt from the environment, else the output's own salt file (created once, mode 0600).

    Called by the runner alone: it is the one place that reads or writes files.
    """
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env.encode("utf-8")
    path = os.path.join(output_dir, SALT_FILE)
    try:
        return _read_salt(path)
    except FileNotFoundError:
        pass
    salt = secrets.token_hex(SALT_BYTES).encode("ascii")
    try:
        os.makedirs(output_dir, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return _read_salt(path)
    except OSError as error:
        raise SaltError(f"cannot keep the user salt in {path}: {error.strerror}; set {env_name}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(salt)
    return salt


def _read_salt(path: str) -> bytes:
    with open(path, "rb") as handle:
        salt = handle.read().strip()
    if not salt:
        raise SaltError(f"the user salt file {path} is empty; delete it or set the salt's environment variable")
    return salt
