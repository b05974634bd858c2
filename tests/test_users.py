"""User ids as salted hashes, the salt kept per output, and the key each conversation counts under."""

from __future__ import annotations

import hashlib
import hmac
import os

import pytest
from pyspark.testing import assertDataFrameEqual

from wildvalues.ingest.users import SALT_FILE, SaltError, UserHasher, hash_user, resolve_salt, user_keys, with_user_keys


def test_hash_user_is_hmac_sha256_under_the_salt():
    assert hash_user("alice", b"pepper") == hmac.new(b"pepper", b"alice", hashlib.sha256).hexdigest()
    assert hash_user("alice", b"pepper") != hash_user("alice", b"other salt")
    # Unkeyed SHA-256 of the id would let anyone with a list of ids reverse it; the HMAC does not match it.
    assert hash_user("alice", b"pepper") != hashlib.sha256(b"alice").hexdigest()


def test_user_hasher_reads_strings_and_integers_only():
    hasher = UserHasher("account", b"s")
    assert hasher.user_hash({"account": " bob "}) == hash_user("bob", b"s")
    assert hasher.user_hash({"account": 42}) == hash_user("42", b"s")
    for record in ({}, {"account": None}, {"account": ""}, {"account": True}, {"account": {"id": 1}}, {"account": 1.5}):
        assert hasher.user_hash(record) is None
    assert "s'" not in repr(hasher) and repr(hasher) == "UserHasher(field='account', salt=<1 bytes>)"


def test_resolve_salt_prefers_the_environment_then_keeps_one_per_output(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_SALT", "from-env")
    assert resolve_salt("MY_SALT", str(tmp_path / "a")) == b"from-env"
    assert not (tmp_path / "a").exists()
    monkeypatch.delenv("MY_SALT")
    first = resolve_salt("MY_SALT", str(tmp_path / "a"))
    assert resolve_salt("MY_SALT", str(tmp_path / "a")) == first
    assert resolve_salt("MY_SALT", str(tmp_path / "b")) != first
    assert oct(os.stat(tmp_path / "a" / SALT_FILE).st_mode & 0o777) == "0o600"


def test_an_empty_salt_file_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MY_SALT", raising=False)
    (tmp_path / SALT_FILE).write_bytes(b"")
    with pytest.raises(SaltError, match=r"^the user salt file .*_user_salt is empty; delete it or set"):
        resolve_salt("MY_SALT", str(tmp_path))


def test_user_keys_fall_back_to_the_conversation(spark):
    conversations = spark.createDataFrame(
        [("c1", "h-ann"), ("c2", "h-ann"), ("c3", None)], "conversation_id string, user_hash string"
    )
    keys = user_keys(conversations)
    assertDataFrameEqual(
        keys,
        spark.createDataFrame(
            [("c1", "u:h-ann"), ("c2", "u:h-ann"), ("c3", "c:c3")], "conversation_id string, user_key string"
        ),
    )
    frame = spark.createDataFrame([("c1", 1), ("c3", 2), ("c9", 3)], "conversation_id string, x int")
    expected = [("c1", 1, "u:h-ann"), ("c3", 2, "c:c3"), ("c9", 3, "c:c9")]  # c9: not in the table
    schema = "conversation_id string, x int, user_key string"
    assertDataFrameEqual(with_user_keys(frame, keys), spark.createDataFrame(expected, schema))
    own = [("c1", 1, "c:c1"), ("c3", 2, "c:c3"), ("c9", 3, "c:c9")]
    assertDataFrameEqual(with_user_keys(frame, None), spark.createDataFrame(own, schema))
