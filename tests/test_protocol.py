"""The sans-IO protocol layer, the error tree and the public names: tables and properties."""

from __future__ import annotations

import base64
import hashlib
import importlib
import pathlib
import pkgutil
import types
import zlib
from collections.abc import Iterator, Mapping
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

import tuspipe
import tuspipe.cli
from tuspipe import (
    _api,
    _errors,
    _fingerprint,
    _journal,
    _pipeline,
    _protocol,
    _retry,
    _source,
    _stages,
    _transport,
)
from tuspipe._errors import (
    ChecksumMismatchError,
    OffsetMismatchError,
    ProtocolError,
    ResponseError,
    TusError,
    UnsupportedFeatureError,
    UploadNotFoundError,
    UploadTooLargeError,
    UsageError,
    VersionMismatchError,
)
from tuspipe._journal import has_expired
from tuspipe._protocol import (
    CHECKSUM_ALGORITHMS,
    OFFSET_CONTENT_TYPE,
    TUS_VERSION,
    Action,
    Request,
    Response,
    ServerCapabilities,
    UploadStatus,
    checksum_header,
    choose_checksum,
    classify_status,
    creation_request,
    decode_metadata,
    delete_request,
    encode_metadata,
    error_for,
    head_request,
    new_hasher,
    options_request,
    parse_capabilities,
    parse_creation,
    parse_head,
    parse_patch,
    parse_termination,
    patch_request,
    upload_expires,
    validate_headers,
    validate_url,
)

ENDPOINT = "https://tus.example/files/"
UPLOAD = "https://tus.example/files/abc"


def header_dict(request: Request) -> dict[str, str]:
    """The request's headers by lower-case name (each name appears once in tuspipe requests)."""
    names = [name.lower() for name, _ in request.headers]
    assert len(names) == len(set(names)), f"repeated header in {request.headers}"
    return {name.lower(): value for name, value in request.headers}


def answer(status_code: int, **headers: str) -> Response:
    """A response; keyword names use '_' for '-' and are lower-cased (``upload_offset=``)."""
    return Response(status_code, {name.replace("_", "-"): v for name, v in headers.items()})


# --------------------------------------------------------------------------------------------
# Public names
# --------------------------------------------------------------------------------------------

EXPECTED_ALL = [
    "CHECKSUM_ALGORITHMS",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_READ_AHEAD",
    "DEFAULT_READ_SIZE",
    "DEFAULT_RETRIES",
    "DEFAULT_SPAN_SIZE",
    "DEFAULT_STALL_TIMEOUT",
    "DEFAULT_STREAM_CHUNK_SIZE",
    "DEFAULT_TIMEOUT",
    "TUS_VERSION",
    "ChannelStats",
    "ChecksumMismatchError",
    "Client",
    "Journal",
    "JournalEntry",
    "NetworkError",
    "NetworkTimeoutError",
    "OffsetMismatchError",
    "OutgoingRequest",
    "ProtocolError",
    "Request",
    "Response",
    "ResponseError",
    "RetryPolicy",
    "SchemeMismatchError",
    "ServerCapabilities",
    "SourceChangedError",
    "TLSVerificationError",
    "TusError",
    "UnsupportedFeatureError",
    "UploadNotFoundError",
    "UploadOutcome",
    "UploadResult",
    "UploadStatus",
    "UploadTooLargeError",
    "UsageError",
    "VersionMismatchError",
    "__version__",
    "create_upload",
    "create_upload_async",
    "decode_metadata",
    "default_journal_path",
    "encode_metadata",
    "server_info",
    "server_info_async",
    "terminate",
    "terminate_async",
    "upload",
    "upload_async",
    "upload_many",
    "upload_many_async",
    "upload_status",
    "upload_status_async",
    "validate_url",
]


def test_public_all_is_exact() -> None:
    assert tuspipe.__all__ == EXPECTED_ALL
    assert len(set(tuspipe.__all__)) == len(tuspipe.__all__)
    for name in tuspipe.__all__:
        assert hasattr(tuspipe, name), name


def test_public_all_lists_every_public_name_of_the_package() -> None:
    public = {
        name
        for name, value in vars(tuspipe).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    public.discard("annotations")  # from __future__ import annotations
    assert public == set(tuspipe.__all__) - {"__version__"}


PRIVATE_MODULES = [
    _errors,
    _protocol,
    _transport,
    _source,
    _stages,
    _pipeline,
    _api,
    _journal,
    _retry,
    _fingerprint,
]
# Private modules added later are checked too.
PRIVATE_MODULES += [
    importlib.import_module(f"tuspipe.{info.name}")
    for info in pkgutil.iter_modules(tuspipe.__path__)
    if info.name.startswith("_")
    and not info.name.startswith("__")
    and f"tuspipe.{info.name}" not in {m.__name__ for m in PRIVATE_MODULES}
]
# ... and the cli package's (tuspipe/cli/_*.py).
PRIVATE_MODULES += [
    importlib.import_module(f"tuspipe.cli.{info.name}")
    for info in pkgutil.iter_modules(tuspipe.cli.__path__)
    if info.name.startswith("_") and not info.name.startswith("__")
]


@pytest.mark.parametrize("module", PRIVATE_MODULES, ids=lambda m: m.__name__)
def test_private_module_all_matches_its_definitions(module: types.ModuleType) -> None:
    exported: list[str] = module.__all__
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert hasattr(module, name), f"{module.__name__}.__all__ names missing {name!r}"
    # Every public class and function the module defines itself is exported.
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and isinstance(value, (type, types.FunctionType))
        and value.__module__ == module.__name__
    }
    assert defined_here <= set(exported), defined_here - set(exported)


@pytest.mark.parametrize(
    ("module", "names"),
    [
        (_retry, {"RetryPolicy", "is_transient", "retry_after_seconds", "retrying"}),
        (_fingerprint, {"fingerprint", "sample_spans", "SAMPLES", "SAMPLE_BYTES"}),
        (_protocol, {"upload_expires"}),
        (_journal, {"Journal", "JournalEntry", "default_journal_path", "has_expired"}),
    ],
    ids=lambda value: getattr(value, "__name__", ""),
)
def test_private_modules_export_the_new_names(module: types.ModuleType, names: set[str]) -> None:
    assert names <= set(module.__all__)


def test_public_errors_are_the_private_ones() -> None:
    assert tuspipe.UsageError is UsageError
    assert tuspipe.CHECKSUM_ALGORITHMS is CHECKSUM_ALGORITHMS
    assert tuspipe.TUS_VERSION == TUS_VERSION == "1.0.0"


def test_public_journal_names_are_the_private_ones() -> None:
    assert tuspipe.Journal is _journal.Journal
    assert tuspipe.JournalEntry is _journal.JournalEntry
    assert tuspipe.default_journal_path is _journal.default_journal_path


def test_default_journal_path(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("TUSPIPE_JOURNAL", str(tmp_path / "mine"))
    assert tuspipe.default_journal_path() == tmp_path / "mine"
    assert tuspipe.Journal().path == tmp_path / "mine"
    monkeypatch.delenv("TUSPIPE_JOURNAL")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert tuspipe.default_journal_path() == tmp_path / "cache" / "tuspipe" / "journal"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".cache" / "tuspipe" / "journal"
    assert tuspipe.default_journal_path() == expected


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error_type", "bases"),
    [
        (UsageError, (TusError, ValueError)),
        (UnsupportedFeatureError, (UsageError, ValueError)),
        (tuspipe.SourceChangedError, (TusError,)),
        (tuspipe.NetworkTimeoutError, (tuspipe.NetworkError, TusError)),
        (VersionMismatchError, (ResponseError,)),
        (UploadNotFoundError, (ResponseError,)),
        (OffsetMismatchError, (ResponseError,)),
        (ChecksumMismatchError, (ResponseError,)),
        (UploadTooLargeError, (ResponseError,)),
        (ProtocolError, (ResponseError, TusError)),
    ],
)
def test_error_tree(error_type: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    for base in bases:
        assert issubclass(error_type, base)


def test_response_error_str_names_status_request_and_quotes_body() -> None:
    error = ResponseError(
        "the server refused",
        status_code=500,
        body=b"  disk full  \n",
        method="PATCH",
        url=UPLOAD,
    )
    text = str(error)
    assert text.startswith("the server refused")
    assert f"PATCH {UPLOAD} answered 500" in text
    assert text.endswith(": 'disk full'")


def test_response_error_str_truncates_long_body_but_keeps_it() -> None:
    body = b"x" * 1000
    error = ResponseError("no", status_code=400, body=body, method="POST", url=ENDPOINT)
    assert "x" * 200 in str(error)
    assert "x" * 201 not in str(error)
    assert error.body == body


def test_response_error_str_without_status_or_body_is_the_message() -> None:
    assert str(ResponseError("plain")) == "plain"


def test_response_error_str_with_undecodable_body() -> None:
    text = str(ResponseError("bad", status_code=400, body=b"\xff\xfeoops"))
    assert "400" in text
    assert "oops" in text


# --------------------------------------------------------------------------------------------
# Request builders
# --------------------------------------------------------------------------------------------


def test_options_request_has_no_tus_resumable() -> None:
    request = options_request(ENDPOINT, (("Authorization", "Bearer t"),))
    assert request.method == "OPTIONS"
    assert request.url == ENDPOINT
    assert header_dict(request) == {"authorization": "Bearer t"}


@pytest.mark.parametrize(
    "request_value",
    [
        creation_request(ENDPOINT, 10),
        head_request(UPLOAD),
        patch_request(UPLOAD, 0, 10),
        delete_request(UPLOAD),
    ],
    ids=lambda r: r.method,
)
def test_tus_requests_carry_tus_resumable(request_value: Request) -> None:
    assert header_dict(request_value)["tus-resumable"] == "1.0.0"


@pytest.mark.parametrize(
    ("build", "method"),
    [
        (lambda h: creation_request(ENDPOINT, 10, headers=h), "POST"),
        (lambda h: head_request(UPLOAD, h), "HEAD"),
        (lambda h: patch_request(UPLOAD, 0, 10, headers=h), "PATCH"),
        (lambda h: delete_request(UPLOAD, h), "DELETE"),
        (lambda h: options_request(ENDPOINT, h), "OPTIONS"),
    ],
)
def test_requests_keep_caller_headers(build: Any, method: str) -> None:
    request: Request = build((("Authorization", "Bearer t"), ("X-Trace", "1")))
    assert request.method == method
    assert request.headers[:2] == (("Authorization", "Bearer t"), ("X-Trace", "1"))


def test_creation_request_with_length() -> None:
    request = creation_request(ENDPOINT, 1234)
    assert request.method == "POST"
    assert request.url == ENDPOINT
    assert header_dict(request) == {"tus-resumable": "1.0.0", "upload-length": "1234"}


def test_creation_request_with_zero_length() -> None:
    assert header_dict(creation_request(ENDPOINT, 0))["upload-length"] == "0"


def test_creation_request_deferred_length() -> None:
    headers = header_dict(creation_request(ENDPOINT, None))
    assert headers["upload-defer-length"] == "1"
    assert "upload-length" not in headers


@pytest.mark.parametrize("metadata", [None, ""])
def test_creation_request_without_metadata_has_no_metadata_header(metadata: str | None) -> None:
    assert "upload-metadata" not in header_dict(creation_request(ENDPOINT, 5, metadata))


def test_creation_request_with_metadata() -> None:
    value = encode_metadata({"filename": "a.txt"})
    assert value is not None
    headers = header_dict(creation_request(ENDPOINT, 5, value))
    assert headers["upload-metadata"] == value == "filename YS50eHQ="


def test_creation_request_negative_length_is_usage_error() -> None:
    with pytest.raises(UsageError):
        creation_request(ENDPOINT, -1)


def test_patch_request_headers() -> None:
    request = patch_request(UPLOAD, 100, 50)
    assert request.method == "PATCH"
    assert request.offset == 100
    assert request.content_length == 50
    assert header_dict(request) == {
        "tus-resumable": "1.0.0",
        "upload-offset": "100",
        "content-type": "application/offset+octet-stream",
        "content-length": "50",
    }
    assert OFFSET_CONTENT_TYPE == "application/offset+octet-stream"


def test_patch_request_with_checksum() -> None:
    checksum = checksum_header("sha1", hashlib.sha1(b"hello").digest())
    headers = header_dict(patch_request(UPLOAD, 0, 5, checksum))
    assert headers["upload-checksum"] == "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00="


@pytest.mark.parametrize(("offset", "length"), [(-1, 5), (0, -1)])
def test_patch_request_negative_values_are_usage_errors(offset: int, length: int) -> None:
    with pytest.raises(UsageError):
        patch_request(UPLOAD, offset, length)


def test_head_and_delete_requests() -> None:
    assert head_request(UPLOAD).method == "HEAD"
    assert delete_request(UPLOAD).method == "DELETE"
    assert header_dict(head_request(UPLOAD)) == {"tus-resumable": "1.0.0"}
    assert header_dict(delete_request(UPLOAD)) == {"tus-resumable": "1.0.0"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "GET", "url": UPLOAD},
        {"method": "PATCH", "url": "files/abc"},
        {"method": "PATCH", "url": UPLOAD, "content_length": -1},
    ],
)
def test_invalid_request_values_cannot_exist(kwargs: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        Request(**kwargs)


# --------------------------------------------------------------------------------------------
# Upload-Metadata
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, None),
        ({}, None),
        ({"filename": "world.png"}, "filename d29ybGQucG5n"),
        ({"name": "é"}, "name " + base64.b64encode("é".encode()).decode()),
        ({"raw": b"\x00\xff"}, "raw AP8="),
        ({"raw": bytearray(b"ab")}, "raw YWI="),
        ({"is_confidential": ""}, "is_confidential"),
        ({"empty": b""}, "empty"),
        ({"a": "1", "b": "", "c": "3"}, "a MQ==,b,c Mw=="),
    ],
)
def test_encode_metadata(metadata: Mapping[str, str | bytes] | None, expected: str | None) -> None:
    assert encode_metadata(metadata) == expected


class _RepeatingKeys(Mapping[str, str]):
    """A mapping whose iteration yields the same key twice (a dict cannot)."""

    def __getitem__(self, key: str) -> str:
        return "v"

    def __iter__(self) -> Iterator[str]:
        return iter(["key", "key"])

    def __len__(self) -> int:
        return 2


@pytest.mark.parametrize(
    "metadata",
    [
        {"": "x"},
        {"a b": "x"},
        {"a,b": "x"},
        {"a\tb": "x"},
        {"ключ": "x"},
        {"caf\u00e9": "x"},
        _RepeatingKeys(),
        {1: "x"},
        {"n": 5},
        {"n": None},
        {"n": ["x"]},
        [("a", "b")],
        "a b",
    ],
    ids=[
        "empty-key",
        "space",
        "comma",
        "tab",
        "cyrillic",
        "latin1",
        "duplicate",
        "int-key",
        "int-value",
        "none-value",
        "list-value",
        "not-a-mapping",
        "str",
    ],
)
def test_encode_metadata_rejects(metadata: object) -> None:
    with pytest.raises(UsageError) as info:
        encode_metadata(cast(Any, metadata))
    assert isinstance(info.value, ValueError)


# Printable ASCII without space and comma: every key the protocol allows.
KEY_ALPHABET = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != ",")
metadata_keys = st.text(alphabet=KEY_ALPHABET, min_size=1, max_size=12)
metadata_values = st.one_of(st.text(max_size=30), st.binary(max_size=30))


@given(st.dictionaries(metadata_keys, metadata_values, max_size=8))
def test_metadata_round_trip(metadata: dict[str, str | bytes]) -> None:
    encoded = encode_metadata(metadata)
    if not metadata:
        assert encoded is None
        return
    assert encoded is not None
    assert encoded.isascii()
    expected = {k: v.encode("utf-8") if isinstance(v, str) else v for k, v in metadata.items()}
    assert decode_metadata(encoded) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", {}),
        ("   ", {}),
        ("a", {"a": b""}),
        ("a YQ==", {"a": b"a"}),
        ("a YQ==, b, c Yw==", {"a": b"a", "b": b"", "c": b"c"}),
    ],
)
def test_decode_metadata(value: str, expected: dict[str, bytes]) -> None:
    assert decode_metadata(value) == expected


@pytest.mark.parametrize(
    "value",
    ["a !!!", "a YQ=", "a YQ==,a Yg==", "a,a", ",a", "a YQ== extra", "a YQ==,"],
)
def test_decode_metadata_rejects(value: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the documented type is ValueError
        decode_metadata(value)


# --------------------------------------------------------------------------------------------
# validate_url, validate_headers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    ["http://tus.example", "https://tus.example/files/", "http://127.0.0.1:1080/files/"],
)
def test_validate_url_accepts(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "files/", "/files/", "http://", "https:///files", "http://h:port/", "", None, 3],
)
def test_validate_url_rejects(url: object) -> None:
    with pytest.raises(UsageError):
        validate_url(cast(Any, url))


def test_validate_headers_accepts() -> None:
    assert validate_headers(None) == ()
    assert validate_headers({}) == ()
    assert validate_headers({"Authorization": "Bearer x", "X-Id": ""}) == (
        ("Authorization", "Bearer x"),
        ("X-Id", ""),
    )


@pytest.mark.parametrize(
    "name",
    [
        "Upload-Offset",
        "upload-offset",
        "UPLOAD-LENGTH",
        "content-length",
        "Content-Type",
        "Tus-Resumable",
        "tus-resumable",
        "Upload-Checksum",
        "Upload-Metadata",
        "Upload-Defer-Length",
        "Transfer-Encoding",
        "Host",
        "X-HTTP-Method-Override",
    ],
)
def test_validate_headers_refuses_reserved_names(name: str) -> None:
    with pytest.raises(UsageError, match="set by tuspipe"):
        validate_headers({name: "1"})


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "a\r\nInjected: 1"},
        {"X-A": "a\nb"},
        {"X-A": "a\rb"},
        {"X-A": "a\0b"},
        {"": "a"},
        {"X A": "a"},
        {"X:A": "a"},
        {"X-A": 1},
        {1: "a"},
        [("X-A", "a")],
    ],
)
def test_validate_headers_refuses_malformed(headers: object) -> None:
    with pytest.raises(UsageError):
        validate_headers(cast(Any, headers))


# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def reference(algorithm: str, data: bytes) -> bytes:
    if algorithm == "crc32":
        return zlib.crc32(data).to_bytes(4, "big")
    return hashlib.new(algorithm, data).digest()


def test_checksum_algorithms_are_the_documented_ones() -> None:
    assert set(CHECKSUM_ALGORITHMS) == {"sha256", "sha512", "sha1", "md5", "crc32"}
    assert CHECKSUM_ALGORITHMS.index("sha256") < CHECKSUM_ALGORITHMS.index("sha1")


@pytest.mark.parametrize("algorithm", CHECKSUM_ALGORITHMS)
@given(pieces=st.lists(st.binary(max_size=300), max_size=6))
def test_new_hasher_matches_reference(algorithm: str, pieces: list[bytes]) -> None:
    hasher = new_hasher(algorithm)
    for piece in pieces:
        hasher.update(piece)
    assert hasher.digest() == reference(algorithm, b"".join(pieces))


def test_crc32_digest_is_four_bytes_big_endian() -> None:
    hasher = new_hasher("crc32")
    hasher.update(b"1234")
    hasher.update(b"56789")
    # The CRC-32 check value of "123456789".
    assert hasher.digest() == bytes.fromhex("cbf43926")
    assert new_hasher("crc32").digest() == b"\x00\x00\x00\x00"


def test_new_hashers_are_independent() -> None:
    first, second = new_hasher("sha1"), new_hasher("sha1")
    first.update(b"abc")
    assert second.digest() == hashlib.sha1().digest()


@pytest.mark.parametrize("name", ["nope", "SHA-1", "", "blake2b"])
def test_new_hasher_rejects_unknown(name: str) -> None:
    with pytest.raises(UsageError):
        new_hasher(name)


def test_checksum_header_known_value() -> None:
    digest = hashlib.sha1(b"hello").digest()
    expected = "sha1 " + base64.b64encode(digest).decode("ascii")
    assert checksum_header("sha1", digest) == expected == "sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00="
    assert checksum_header("crc32", bytes.fromhex("cbf43926")) == "crc32 y/Q5Jg=="


def capabilities(
    extensions: tuple[str, ...] = ("creation", "checksum"),
    algorithms: tuple[str, ...] = ("sha1",),
) -> ServerCapabilities:
    return ServerCapabilities(
        versions=("1.0.0",),
        extensions=frozenset(extensions),
        max_size=None,
        checksum_algorithms=algorithms,
    )


@pytest.mark.parametrize(
    ("requested", "offered", "expected"),
    [
        (None, capabilities(), None),
        (None, None, None),
        ("auto", capabilities(algorithms=("sha1", "sha256")), "sha256"),
        ("auto", capabilities(algorithms=("sha256", "sha1")), "sha256"),
        ("auto", capabilities(algorithms=("md5", "sha512", "crc32")), "sha512"),
        ("auto", capabilities(algorithms=("md5",)), "md5"),
        ("auto", capabilities(algorithms=("blake3",)), None),
        ("auto", capabilities(extensions=("creation",), algorithms=()), None),
        ("auto", capabilities(extensions=("creation",), algorithms=("sha1",)), None),
        ("auto", None, None),
        ("AUTO", capabilities(algorithms=("sha1",)), "sha1"),
        ("sha1", capabilities(algorithms=("sha1", "md5")), "sha1"),
        ("SHA1", capabilities(algorithms=("sha1",)), "sha1"),
        ("crc32", None, "crc32"),
        ("sha512", None, "sha512"),
    ],
)
def test_choose_checksum(
    requested: str | None, offered: ServerCapabilities | None, expected: str | None
) -> None:
    assert choose_checksum(requested, offered) == expected


@pytest.mark.parametrize(
    "offered",
    [
        capabilities(algorithms=("md5",)),
        capabilities(algorithms=()),
        capabilities(extensions=("creation",), algorithms=("sha256",)),
    ],
)
def test_choose_checksum_explicit_not_offered(offered: ServerCapabilities) -> None:
    with pytest.raises(UnsupportedFeatureError):
        choose_checksum("sha256", offered)


@pytest.mark.parametrize("offered", [None, capabilities(algorithms=("nope",))])
@pytest.mark.parametrize("requested", ["nope", "sha-256", ""])
def test_choose_checksum_unknown_name(requested: str, offered: ServerCapabilities | None) -> None:
    with pytest.raises(UsageError) as info:
        choose_checksum(requested, offered)
    assert type(info.value) is UsageError


def test_choose_checksum_non_str() -> None:
    with pytest.raises(UsageError):
        choose_checksum(cast(Any, True), None)


# --------------------------------------------------------------------------------------------
# Status classification and errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "action"),
    [
        ("POST", 201, Action.SUCCESS),
        ("HEAD", 200, Action.SUCCESS),
        ("PATCH", 204, Action.SUCCESS),
        ("PATCH", 206, Action.SUCCESS),
        ("PATCH", 409, Action.RESYNC),
        ("PATCH", 423, Action.RETRY),
        ("PATCH", 429, Action.RETRY),
        ("PATCH", 408, Action.RETRY),
        ("PATCH", 500, Action.RETRY),
        ("PATCH", 502, Action.RETRY),
        ("PATCH", 503, Action.RETRY),
        ("HEAD", 504, Action.RETRY),
        ("PATCH", 460, Action.RESEND),
        ("HEAD", 404, Action.RECREATE),
        ("PATCH", 404, Action.RECREATE),
        ("HEAD", 410, Action.RECREATE),
        ("PATCH", 410, Action.RECREATE),
        ("HEAD", 403, Action.RECREATE),
        ("PATCH", 403, Action.FATAL),
        ("POST", 403, Action.FATAL),
        ("PATCH", 400, Action.FATAL),
        ("POST", 401, Action.FATAL),
        ("POST", 412, Action.FATAL),
        ("POST", 413, Action.FATAL),
        ("PATCH", 415, Action.FATAL),
        ("PATCH", 418, Action.FATAL),
        ("PATCH", 302, Action.FATAL),
    ],
)
def test_classify_status(method: str, status: int, action: Action) -> None:
    assert classify_status(method, status) is action


@pytest.mark.parametrize(
    ("method", "status", "error_type"),
    [
        ("PATCH", 404, UploadNotFoundError),
        ("HEAD", 410, UploadNotFoundError),
        ("HEAD", 403, UploadNotFoundError),
        ("PATCH", 403, ResponseError),
        ("PATCH", 409, OffsetMismatchError),
        ("POST", 412, VersionMismatchError),
        ("POST", 413, UploadTooLargeError),
        ("PATCH", 460, ChecksumMismatchError),
        ("PATCH", 400, ResponseError),
        ("POST", 401, ResponseError),
        ("PATCH", 415, ResponseError),
        ("PATCH", 500, ResponseError),
        ("PATCH", 423, ResponseError),
    ],
)
def test_error_for_maps_status_to_type(method: str, status: int, error_type: type) -> None:
    url = ENDPOINT if method == "POST" else UPLOAD
    request = Request(method, url)
    response = Response(status, {"x-reason": "because"}, b"server says no")
    error = error_for(request, response)
    assert type(error) is error_type
    assert error.status_code == status
    assert error.body == b"server says no"
    assert error.headers == {"x-reason": "because"}
    assert error.method == method
    assert error.url == url
    assert str(status) in str(error)
    assert "server says no" in str(error)


def test_error_for_412_names_the_servers_versions() -> None:
    error = error_for(head_request(UPLOAD), answer(412, tus_version="0.2.2,0.2.1"))
    assert isinstance(error, VersionMismatchError)
    assert "0.2.2,0.2.1" in str(error)


def test_error_for_412_without_tus_version() -> None:
    error = error_for(head_request(UPLOAD), answer(412))
    assert "no version named" in str(error)


def test_error_for_custom_message() -> None:
    error = error_for(head_request(UPLOAD), answer(500), "custom words")
    assert str(error).startswith("custom words")


# --------------------------------------------------------------------------------------------
# parse_capabilities
# --------------------------------------------------------------------------------------------


def test_parse_capabilities_full() -> None:
    response = answer(
        204,
        tus_version="1.0.0,0.2.2",
        tus_extension="creation, termination,checksum",
        tus_max_size="1073741824",
        tus_checksum_algorithm="SHA1, md5,Sha256",
    )
    result = parse_capabilities(options_request(ENDPOINT), response)
    assert result == ServerCapabilities(
        versions=("1.0.0", "0.2.2"),
        extensions=frozenset({"creation", "termination", "checksum"}),
        max_size=1073741824,
        checksum_algorithms=("sha1", "md5", "sha256"),
    )
    assert result.supports("checksum")
    assert not result.supports("concatenation")


def test_parse_capabilities_minimal() -> None:
    result = parse_capabilities(options_request(ENDPOINT), answer(200, tus_version="1.0.0"))
    assert result.versions == ("1.0.0",)
    assert result.extensions == frozenset()
    assert result.max_size is None
    assert result.checksum_algorithms == ()


@pytest.mark.parametrize("versions", ["0.2.2", "", "1.0.0-rc1"])
def test_parse_capabilities_without_1_0_0(versions: str) -> None:
    with pytest.raises(VersionMismatchError) as info:
        parse_capabilities(options_request(ENDPOINT), answer(204, tus_version=versions))
    if versions:
        assert versions in str(info.value)


def test_parse_capabilities_no_version_header() -> None:
    with pytest.raises(VersionMismatchError):
        parse_capabilities(options_request(ENDPOINT), answer(204))


@pytest.mark.parametrize("max_size", ["big", "-1", "1.5", "+5", "1_0", "1" + "0" * 20])
def test_parse_capabilities_malformed_max_size(max_size: str) -> None:
    with pytest.raises(ProtocolError):
        parse_capabilities(
            options_request(ENDPOINT), answer(204, tus_version="1.0.0", tus_max_size=max_size)
        )


@pytest.mark.parametrize("status", [401, 404, 410])
def test_parse_capabilities_error_status(status: int) -> None:
    with pytest.raises(ResponseError) as info:
        parse_capabilities(options_request(ENDPOINT), answer(status, tus_version="1.0.0"))
    # no upload is involved: a 404 says the endpoint is wrong, not that an upload vanished
    assert type(info.value) is ResponseError
    if status != 401:
        assert "check `url`" in str(info.value)


# --------------------------------------------------------------------------------------------
# parse_creation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "location", "expected"),
    [
        (ENDPOINT, "https://tus.example/files/abc", "https://tus.example/files/abc"),
        (ENDPOINT, "https://other.example:8080/up/1", "https://other.example:8080/up/1"),
        ("http://tus.example/files/", "http://other.example/up/1", "http://other.example/up/1"),
        (ENDPOINT, "/files/abc", "https://tus.example/files/abc"),
        (ENDPOINT, "abc", "https://tus.example/files/abc"),
        ("https://tus.example/files", "abc", "https://tus.example/abc"),
        ("https://tus.example:8443/api/files/", "/u/1", "https://tus.example:8443/u/1"),
        (ENDPOINT, "  abc  ", "https://tus.example/files/abc"),
    ],
)
def test_parse_creation_location(endpoint: str, location: str, expected: str) -> None:
    request = creation_request(endpoint, 10)
    assert parse_creation(request, answer(201, location=location)) == expected


def test_parse_creation_refuses_a_downgrade_to_http() -> None:
    request = creation_request(ENDPOINT, 10)
    downgrade = answer(201, location="http://tus.example/files/abc")
    with pytest.raises(ProtocolError, match="unencrypted"):
        parse_creation(request, downgrade)
    allowed = parse_creation(request, downgrade, allow_insecure_location=True)
    assert allowed == "http://tus.example/files/abc"


def test_parse_creation_refuses_a_huge_location() -> None:
    with pytest.raises(ProtocolError, match="Location of"):
        parse_creation(creation_request(ENDPOINT, 10), answer(201, location="/" + "a" * 9000))


@pytest.mark.parametrize("location", [None, "", "   "])
def test_parse_creation_without_location(location: str | None) -> None:
    headers = {} if location is None else {"location": location}
    with pytest.raises(ProtocolError, match="Location"):
        parse_creation(creation_request(ENDPOINT, 10), Response(201, headers))


@pytest.mark.parametrize("location", ["ftp://tus.example/files/abc", "mailto:x@y"])
def test_parse_creation_non_http_location(location: str) -> None:
    with pytest.raises(ProtocolError):
        parse_creation(creation_request(ENDPOINT, 10), answer(201, location=location))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (200, VersionMismatchError),  # a success other than 201 without Tus-Resumable
        (204, VersionMismatchError),
        (400, ResponseError),
        (403, ResponseError),
        (404, ResponseError),  # the creation endpoint is wrong; no upload vanished
        (410, ResponseError),
        (412, VersionMismatchError),
        (413, UploadTooLargeError),
        (500, ResponseError),
    ],
)
def test_parse_creation_unwanted_status(status: int, error_type: type) -> None:
    with pytest.raises(ResponseError) as info:
        parse_creation(creation_request(ENDPOINT, 10), answer(status, location="/files/abc"))
    assert type(info.value) is error_type
    assert info.value.status_code == status
    assert info.value.method == "POST"


@pytest.mark.parametrize("status", [200, 204])
def test_parse_creation_other_success_from_a_tus_server(status: int) -> None:
    with pytest.raises(ProtocolError, match="not 201"):
        parse_creation(
            creation_request(ENDPOINT, 10),
            answer(status, location="/files/abc", tus_resumable="1.0.0"),
        )


def test_parse_creation_404_names_the_endpoint() -> None:
    with pytest.raises(ResponseError, match="no tus creation endpoint"):
        parse_creation(creation_request(ENDPOINT, 10), answer(404))


def test_parse_creation_wrong_tus_resumable() -> None:
    with pytest.raises(VersionMismatchError):
        parse_creation(
            creation_request(ENDPOINT, 10), answer(201, location="abc", tus_resumable="0.2.2")
        )


# --------------------------------------------------------------------------------------------
# parse_head
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204])
def test_parse_head(status: int) -> None:
    response = answer(
        status,
        upload_offset="40",
        upload_length="100",
        tus_resumable="1.0.0",
        upload_expires="Wed, 25 Jun 2031 16:00:00 GMT",
    )
    assert parse_head(head_request(UPLOAD), response) == UploadStatus(
        offset=40, length=100, expires="Wed, 25 Jun 2031 16:00:00 GMT"
    )


def test_parse_head_without_length() -> None:
    status = parse_head(head_request(UPLOAD), answer(200, upload_offset="7"))
    assert status == UploadStatus(offset=7, length=None)


def test_parse_head_complete_upload() -> None:
    status = parse_head(head_request(UPLOAD), answer(200, upload_offset="9", upload_length="9"))
    assert status.offset == status.length == 9


@pytest.mark.parametrize(
    "offset",
    [None, "", "-1", "abc", "+5", "1_0", "1.0", "0x10", "1" + "0" * 20, "\u0661\u0662", "5 5"],
)
def test_parse_head_bad_offset(offset: str | None) -> None:
    headers = {"upload-length": "100", "tus-resumable": "1.0.0"}
    if offset is not None:
        headers["upload-offset"] = offset
    with pytest.raises(ProtocolError):
        parse_head(head_request(UPLOAD), Response(200, headers))


def test_parse_head_of_something_that_is_not_tus() -> None:
    with pytest.raises(VersionMismatchError, match="does not look like a tus server"):
        parse_head(head_request(UPLOAD), Response(200, {"content-type": "text/html"}))


@pytest.mark.parametrize("length", ["-1", "x", "+1"])
def test_parse_head_bad_length(length: str) -> None:
    with pytest.raises(ProtocolError):
        parse_head(head_request(UPLOAD), answer(200, upload_offset="0", upload_length=length))


def test_parse_head_offset_beyond_length() -> None:
    with pytest.raises(ProtocolError, match="beyond"):
        parse_head(head_request(UPLOAD), answer(200, upload_offset="11", upload_length="10"))


@pytest.mark.parametrize("status", [404, 410, 403])
def test_parse_head_gone(status: int) -> None:
    with pytest.raises(UploadNotFoundError) as info:
        parse_head(head_request(UPLOAD), answer(status))
    assert info.value.status_code == status


def test_parse_head_412() -> None:
    with pytest.raises(VersionMismatchError):
        parse_head(head_request(UPLOAD), answer(412, tus_version="0.2.2"))


def test_parse_head_wrong_tus_resumable() -> None:
    with pytest.raises(VersionMismatchError):
        parse_head(head_request(UPLOAD), answer(200, upload_offset="0", tus_resumable="2.0.0"))


# --------------------------------------------------------------------------------------------
# Upload-Expires: upload_expires (protocol) and has_expired (journal)
# --------------------------------------------------------------------------------------------

EXPIRES = "Wed, 25 Jun 2031 16:00:00 GMT"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"upload-expires": EXPIRES}, EXPIRES),
        ({"upload-expires": f"  {EXPIRES} "}, EXPIRES),
        ({"upload-expires": ""}, None),
        ({"upload-expires": "   "}, None),
        ({}, None),
        ({"upload-expires": "x" * 500}, "x" * 64),
    ],
    ids=["date", "padded", "empty", "blank", "absent", "long"],
)
def test_upload_expires(headers: dict[str, str], expected: str | None) -> None:
    assert upload_expires(Response(201, headers)) == expected


def _expiring(expires: str | None) -> _journal.JournalEntry:
    return _journal.JournalEntry(
        key="k", url=UPLOAD, endpoint=ENDPOINT, source="s", size=1, expires=expires
    )


MOMENT = 1_782_403_200.0  # Wed, 25 Jun 2026 16:00:00 GMT


@pytest.mark.parametrize(
    ("expires", "now", "expected"),
    [
        (None, MOMENT, False),
        ("", MOMENT, False),
        ("Wed, 25 Jun 2026 16:00:00 GMT", MOMENT - 1, False),
        ("Wed, 25 Jun 2026 16:00:00 GMT", MOMENT, True),
        ("Wed, 25 Jun 2026 16:00:00 GMT", MOMENT + 1, True),
        ("Wed, 25 Jun 2026 18:00:00 +0200", MOMENT, True),
        ("not a date", MOMENT, False),
    ],
)
def test_has_expired(expires: str | None, now: float, expected: bool) -> None:
    assert has_expired(_expiring(expires), now=now) is expected


def test_has_expired_defaults_to_the_clock() -> None:
    assert has_expired(_expiring("Mon, 01 Jan 2001 00:00:00 GMT"))
    assert not has_expired(_expiring("Fri, 01 Jan 2100 00:00:00 GMT"))


# --------------------------------------------------------------------------------------------
# parse_patch
# --------------------------------------------------------------------------------------------

PATCH = patch_request(UPLOAD, 100, 50)


@pytest.mark.parametrize("new_offset", [100, 101, 125, 149, 150])
def test_parse_patch_accepts_offsets_within_what_was_sent(new_offset: int) -> None:
    assert parse_patch(PATCH, answer(204, upload_offset=str(new_offset))) == new_offset


@pytest.mark.parametrize("new_offset", [0, 99, 151, 1000])
def test_parse_patch_rejects_offsets_outside_what_was_sent(new_offset: int) -> None:
    with pytest.raises(ProtocolError, match="range"):
        parse_patch(PATCH, answer(204, upload_offset=str(new_offset)))


@given(
    start=st.integers(min_value=0, max_value=2**40),
    length=st.integers(min_value=0, max_value=2**30),
    new_offset=st.integers(min_value=0, max_value=2**41),
)
def test_parse_patch_property(start: int, length: int, new_offset: int) -> None:
    request = patch_request(UPLOAD, start, length)
    response = answer(204, upload_offset=str(new_offset))
    if start <= new_offset <= start + length:
        assert parse_patch(request, response) == new_offset
    else:
        with pytest.raises(ProtocolError):
            parse_patch(request, response)


@pytest.mark.parametrize("offset", [None, "", "abc", "-5", "+120"])
def test_parse_patch_bad_or_missing_offset(offset: str | None) -> None:
    headers = {} if offset is None else {"upload-offset": offset}
    with pytest.raises(ProtocolError):
        parse_patch(PATCH, Response(204, headers))


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (460, ChecksumMismatchError),
        (409, OffsetMismatchError),
        (404, UploadNotFoundError),
        (410, UploadNotFoundError),
        (412, VersionMismatchError),
        (413, UploadTooLargeError),
        (403, ResponseError),
        (400, ResponseError),
        (415, ResponseError),
        (500, ResponseError),
        (201, ResponseError),
    ],
)
def test_parse_patch_unwanted_status(status: int, error_type: type) -> None:
    with pytest.raises(ResponseError) as info:
        parse_patch(PATCH, answer(status, upload_offset="150"))
    assert type(info.value) is error_type
    assert info.value.method == "PATCH"
    assert info.value.url == UPLOAD


def test_parse_patch_200_is_accepted() -> None:
    assert parse_patch(PATCH, answer(200, upload_offset="150")) == 150


# --------------------------------------------------------------------------------------------
# parse_termination
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204, 404, 410])
def test_parse_termination_ok(status: int) -> None:
    parse_termination(delete_request(UPLOAD), answer(status))  # no exception: success


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, ResponseError), (403, ResponseError), (500, ResponseError), (412, VersionMismatchError)],
)
def test_parse_termination_errors(status: int, error_type: type) -> None:
    with pytest.raises(ResponseError) as info:
        parse_termination(delete_request(UPLOAD), answer(status))
    assert type(info.value) is error_type
