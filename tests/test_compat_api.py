"""tuspipe.compat offers tuspy 1.1.0's API: every name, parameter and default.

The table below is the contract, written out by hand from tuspy's API. It is checked against
tuspipe.compat, and (since the dev environment has tuspy 1.1.0 installed as ``tusclient``)
against tusclient itself with ``inspect.signature``: the table, tuspipe.compat and tusclient
must all agree. A second test imports each module the way tuspy users import tusclient's, in
a fresh interpreter; a third checks the layering rule (compat uses tuspipe's public API only).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import tuspipe

REQUIRED = object()
VAR_POSITIONAL = object()
VAR_KEYWORD = object()


@dataclass(frozen=True)
class Entry:
    """One function or method: where it lives, its parameters (name, default) without
    ``self``, and whether it is a coroutine function in tuspipe.compat."""

    module: str  # relative to the package: "client", "uploader.baseuploader", ...
    owner: str | None  # the class, or None for a module-level function
    name: str
    parameters: tuple[tuple[str, object], ...] = ()
    coroutine: bool = False
    abstract: bool = False


def m(
    module: str,
    owner: str | None,
    name: str,
    *parameters: tuple[str, object],
    coroutine: bool = False,
    abstract: bool = False,
) -> Entry:
    return Entry(module, owner, name, parameters, coroutine, abstract)


ARGS = (("args", VAR_POSITIONAL), ("kwargs", VAR_KEYWORD))
UPLOADER_INIT = (
    ("file_path", None),
    ("file_stream", None),
    ("url", None),
    ("client", None),
    ("chunk_size", sys.maxsize),
    ("metadata", None),
    ("metadata_encoding", "utf-8"),
    ("retries", 0),
    ("retry_delay", 30),
    ("verify_tls_cert", True),
    ("store_url", False),
    ("url_storage", None),
    ("fingerprinter", None),
    ("upload_checksum", False),
)
BASE = "uploader.baseuploader"
UPLOADER = "uploader.uploader"

CALLABLES = [
    m(
        "client",
        "TusClient",
        "__init__",
        ("url", REQUIRED),
        ("headers", None),
        ("client_cert", None),
    ),
    m("client", "TusClient", "set_headers", ("headers", REQUIRED)),
    m("client", "TusClient", "uploader", *ARGS),
    m("client", "TusClient", "async_uploader", *ARGS),
    m(BASE, "BaseUploader", "__init__", *UPLOADER_INIT),
    m(BASE, "BaseUploader", "get_headers"),
    m(BASE, "BaseUploader", "get_url_creation_headers"),
    m(BASE, "BaseUploader", "get_offset"),
    m(BASE, "BaseUploader", "encode_metadata"),
    m(BASE, "BaseUploader", "set_url", ("url", REQUIRED)),
    m(BASE, "BaseUploader", "get_request_length"),
    m(BASE, "BaseUploader", "get_file_stream"),
    m(BASE, "BaseUploader", "get_file_size"),
    m(UPLOADER, "Uploader", "__init__", *UPLOADER_INIT),
    m(UPLOADER, "Uploader", "upload", ("stop_at", None)),
    m(UPLOADER, "Uploader", "upload_chunk"),
    m(UPLOADER, "Uploader", "create_url"),
    m(UPLOADER, "AsyncUploader", "__init__", *UPLOADER_INIT),
    m(UPLOADER, "AsyncUploader", "upload", ("stop_at", None), coroutine=True),
    m(UPLOADER, "AsyncUploader", "upload_chunk", coroutine=True),
    m(UPLOADER, "AsyncUploader", "create_url", coroutine=True),
    # A coroutine here, unlike tuspy's (a blocking HEAD inside an async uploader).
    m(UPLOADER, "AsyncUploader", "get_offset", coroutine=True),
    m(
        "exceptions",
        "TusCommunicationError",
        "__init__",
        ("message", REQUIRED),
        ("status_code", None),
        ("response_content", None),
    ),
    m("storage.interface", "Storage", "get_item", ("key", REQUIRED), abstract=True),
    m(
        "storage.interface",
        "Storage",
        "set_item",
        ("key", REQUIRED),
        ("value", REQUIRED),
        abstract=True,
    ),
    m("storage.interface", "Storage", "remove_item", ("key", REQUIRED), abstract=True),
    m("storage.filestorage", "FileStorage", "__init__", ("fp", REQUIRED)),
    m("storage.filestorage", "FileStorage", "get_item", ("key", REQUIRED)),
    m("storage.filestorage", "FileStorage", "set_item", ("key", REQUIRED), ("url", REQUIRED)),
    m("storage.filestorage", "FileStorage", "remove_item", ("key", REQUIRED)),
    m("storage.filestorage", "FileStorage", "close"),
    m("fingerprint.interface", "Fingerprint", "get_fingerprint", ("fs", REQUIRED), abstract=True),
    m("fingerprint.fingerprint", "Fingerprint", "get_fingerprint", ("fs", REQUIRED)),
    m("request", "BaseTusRequest", "__init__", ("uploader", REQUIRED)),
    m("request", "TusRequest", "__init__", ("uploader", REQUIRED)),
    m("request", "TusRequest", "perform"),
    m(
        "request",
        "AsyncTusRequest",
        "__init__",
        ("args", VAR_POSITIONAL),
        ("io_loop", None),
        ("kwargs", VAR_KEYWORD),
    ),
    m("request", "AsyncTusRequest", "perform", coroutine=True),
]

# class -> (its module, its base class in the table or None)
CLASSES = {
    "TusClient": ("client", None),
    "BaseUploader": (BASE, None),
    "Uploader": (UPLOADER, "BaseUploader"),
    "AsyncUploader": (UPLOADER, "BaseUploader"),
    "TusCommunicationError": ("exceptions", None),
    "TusUploadFailed": ("exceptions", "TusCommunicationError"),
    "Storage": ("storage.interface", None),
    "FileStorage": ("storage.filestorage", "Storage"),
    "Fingerprint": ("fingerprint.fingerprint", None),
    "BaseTusRequest": ("request", None),
    "TusRequest": ("request", "BaseTusRequest"),
    "AsyncTusRequest": ("request", "BaseTusRequest"),
}

CONSTANTS = {
    ("BaseUploader", "DEFAULT_HEADERS"): {"Tus-Resumable": "1.0.0"},
    ("BaseUploader", "DEFAULT_CHUNK_SIZE"): sys.maxsize,
    ("BaseUploader", "CHECKSUM_ALGORITHM_PAIR"): ("sha1", __import__("hashlib").sha1),
    ("Fingerprint", "BLOCK_SIZE"): 65536,
}
PROPERTIES = [
    ("BaseUploader", "checksum_algorithm"),
    ("BaseUploader", "checksum_algorithm_name"),
    ("BaseUploader", "client_cert"),
]
# tusclient's public methods that tuspipe.compat deliberately leaves out, and why.
NOT_OFFERED = {
    ("BaseTusRequest", "add_checksum"): (
        "a helper of tuspy's request internals (hash a chunk held in memory into a header); "
        "tuspipe hashes each chunk while streaming it and sends Upload-Checksum itself"
    ),
}


def test_what_is_not_offered_is_really_absent() -> None:
    for owner, name in NOT_OFFERED:
        module = CLASSES[owner][0]
        assert hasattr(_resolve("tusclient", module, None, owner), name)
        assert not hasattr(_resolve("tuspipe.compat", module, None, owner), name)


# Attributes an instance carries (tuspy sets them in its constructors).
CLIENT_ATTRIBUTES = ("url", "headers", "client_cert")
UPLOADER_ATTRIBUTES = (
    "file_path",
    "file_stream",
    "url",
    "client",
    "chunk_size",
    "metadata",
    "metadata_encoding",
    "offset",
    "stop_at",
    "retries",
    "retry_delay",
    "verify_tls_cert",
    "store_url",
    "url_storage",
    "fingerprinter",
    "upload_checksum",
    "request",
)
REQUEST_ATTRIBUTES = ("response_headers", "status_code", "response_content")
# Names each module must offer (beyond the classes above), e.g. re-exports.
MODULE_NAMES = {
    "uploader": ("Uploader", "AsyncUploader"),
    "client": ("TusClient",),
    "exceptions": ("TusCommunicationError", "TusUploadFailed"),
}


def _resolve(package: str, module: str, owner: str | None, name: str) -> Any:
    namespace: Any = importlib.import_module(f"{package}.{module}")
    if owner is not None:
        namespace = getattr(namespace, owner)
    return getattr(namespace, name)


def _signature_table(function: Any) -> tuple[tuple[str, object], ...]:
    """The (name, default) pairs of `function`'s parameters, without self."""
    pairs = []
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name == "self":
            continue
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            pairs.append((parameter.name, VAR_POSITIONAL))
        elif parameter.kind is inspect.Parameter.VAR_KEYWORD:
            pairs.append((parameter.name, VAR_KEYWORD))
        elif parameter.default is inspect.Parameter.empty:
            pairs.append((parameter.name, REQUIRED))
        else:
            pairs.append((parameter.name, parameter.default))
    return tuple(pairs)


def _tusclient_signature(entry: Entry) -> tuple[tuple[str, object], ...]:
    """tusclient's parameters for `entry`. tuspy's AsyncUploader constructor only forwards
    ``*args, **kwargs`` to BaseUploader's, so that one is what it accepts."""
    table = _signature_table(_resolve("tusclient", entry.module, entry.owner, entry.name))
    if (entry.owner, entry.name) == ("AsyncUploader", "__init__") and table == ARGS:
        table = _signature_table(_resolve("tusclient", BASE, "BaseUploader", "__init__"))
    return table


def _id(entry: Entry) -> str:
    return f"{entry.module}.{entry.owner}.{entry.name}" if entry.owner else entry.name


@pytest.mark.parametrize("entry", CALLABLES, ids=_id)
def test_compat_matches_the_table(entry: Entry) -> None:
    function = _resolve("tuspipe.compat", entry.module, entry.owner, entry.name)
    assert _signature_table(function) == entry.parameters
    assert inspect.iscoroutinefunction(function) is entry.coroutine
    assert bool(getattr(function, "__isabstractmethod__", False)) is entry.abstract


@pytest.mark.parametrize("entry", CALLABLES, ids=_id)
def test_tusclient_matches_the_table(entry: Entry) -> None:
    assert _tusclient_signature(entry) == entry.parameters
    function = _resolve("tusclient", entry.module, entry.owner, entry.name)
    # the one deliberate difference: get_offset of the async uploader is a coroutine here
    deliberate = (entry.owner, entry.name) == ("AsyncUploader", "get_offset")
    assert inspect.iscoroutinefunction(function) is (entry.coroutine and not deliberate)


@pytest.mark.parametrize("class_name", CLASSES)
def test_classes_and_their_bases(class_name: str) -> None:
    module, base = CLASSES[class_name]
    for package in ("tuspipe.compat", "tusclient"):
        cls = _resolve(package, module, None, class_name)
        assert inspect.isclass(cls)
        if base is not None:
            assert issubclass(cls, _resolve(package, CLASSES[base][0], None, base))


def test_no_method_of_tusclient_is_missing() -> None:
    """Every public method or property tusclient's classes define is in the table (or is a
    property listed below), so the table cannot silently miss one."""
    listed = {(entry.owner, entry.name) for entry in CALLABLES} | set(PROPERTIES) | set(NOT_OFFERED)
    for class_name, (module, _) in CLASSES.items():
        cls = _resolve("tusclient", module, None, class_name)
        for name, member in vars(cls).items():
            if name.startswith("_") or not (callable(member) or isinstance(member, property)):
                continue
            assert (class_name, name) in listed, f"{class_name}.{name} is not in the table"


@pytest.mark.parametrize(("owner", "name"), list(CONSTANTS))
def test_class_constants(owner: str, name: str) -> None:
    module = CLASSES[owner][0]
    expected = CONSTANTS[(owner, name)]
    assert getattr(_resolve("tuspipe.compat", module, None, owner), name) == expected
    assert getattr(_resolve("tusclient", module, None, owner), name) == expected


@pytest.mark.parametrize(("owner", "name"), PROPERTIES)
def test_properties(owner: str, name: str) -> None:
    module = CLASSES[owner][0]
    for package in ("tuspipe.compat", "tusclient"):
        assert isinstance(getattr(_resolve(package, module, None, owner), name), property)


@pytest.mark.parametrize(("module", "names"), list(MODULE_NAMES.items()))
def test_module_names(module: str, names: tuple[str, ...]) -> None:
    for package in ("tuspipe.compat", "tusclient"):
        loaded = importlib.import_module(f"{package}.{module}")
        for name in names:
            assert hasattr(loaded, name), f"{package}.{module}.{name}"


def test_instance_attributes(tmp_path: Path) -> None:
    """Instances carry tuspy's attributes (built without any network traffic)."""
    path = tmp_path / "f.bin"
    path.write_bytes(b"12345")
    for package in ("tuspipe.compat", "tusclient"):
        client_module = importlib.import_module(f"{package}.client")
        tus = client_module.TusClient("http://127.0.0.1:9/files/")
        for name in CLIENT_ATTRIBUTES:
            assert hasattr(tus, name), f"{package} TusClient.{name}"
        for make in (tus.uploader, tus.async_uploader):
            uploader = make(str(path))
            for name in UPLOADER_ATTRIBUTES:
                assert hasattr(uploader, name), f"{package} {type(uploader).__name__}.{name}"
            assert uploader.stop_at == 5
        request_module = importlib.import_module(f"{package}.request")
        # tuspy's request opens the file (and leaks the handle); close it here
        request = request_module.BaseTusRequest(tus.uploader(str(path), url=None))
        for name in REQUEST_ATTRIBUTES:
            assert hasattr(request, name), f"{package} BaseTusRequest.{name}"
        if hasattr(request, "file"):
            request.file.close()


# --------------------------------------------------------------------------------------------
# Importing as tuspy users do
# --------------------------------------------------------------------------------------------

# Written for tusclient, as tuspy's documentation and users write them; each is run with
# `tusclient` replaced by `tuspipe.compat`, then the bound name is checked.
TUSPY_IMPORTS = [
    ("from tusclient import client", "client.TusClient"),
    ("from tusclient.client import TusClient", "TusClient"),
    ("import tusclient.client", "tusclient.client.TusClient"),
    ("from tusclient.uploader import Uploader, AsyncUploader", "AsyncUploader"),
    ("from tusclient.uploader.uploader import Uploader", "Uploader"),
    ("from tusclient.uploader.baseuploader import BaseUploader", "BaseUploader"),
    ("from tusclient import uploader", "uploader.Uploader"),
    ("from tusclient.exceptions import TusCommunicationError", "TusCommunicationError"),
    ("from tusclient.exceptions import TusUploadFailed", "TusUploadFailed"),
    ("from tusclient import exceptions", "exceptions.TusUploadFailed"),
    ("from tusclient.storage import filestorage", "filestorage.FileStorage"),
    ("from tusclient.storage.filestorage import FileStorage", "FileStorage"),
    ("from tusclient.storage.interface import Storage", "Storage"),
    ("from tusclient.storage import interface", "interface.Storage"),
    ("from tusclient.fingerprint import fingerprint", "fingerprint.Fingerprint"),
    ("from tusclient.fingerprint.fingerprint import Fingerprint", "Fingerprint"),
    ("from tusclient.fingerprint.interface import Fingerprint", "Fingerprint"),
    ("from tusclient.fingerprint import interface", "interface.Fingerprint"),
    ("from tusclient.request import TusRequest, AsyncTusRequest", "AsyncTusRequest"),
    ("from tusclient.request import BaseTusRequest", "BaseTusRequest"),
    ("from tusclient import request", "request.TusRequest"),
]


@pytest.mark.parametrize(
    ("statement", "expression"), TUSPY_IMPORTS, ids=[s for s, _ in TUSPY_IMPORTS]
)
def test_imports_as_tuspy_users_write_them(statement: str, expression: str) -> None:
    # The statement is real tuspy usage: it works with tusclient ...
    namespace: dict[str, Any] = {}
    exec(statement, namespace)
    assert inspect.isclass(eval(expression, namespace))
    # ... and, with the package name replaced, with tuspipe.compat in a fresh interpreter
    # (so no import order of this test session can hide a missing import).
    compat_statement = statement.replace("tusclient", "tuspipe.compat")
    compat_expression = expression.replace("tusclient", "tuspipe.compat")
    program = (
        f"{compat_statement}\n"
        f"value = {compat_expression}\n"
        "assert isinstance(value, type), value\n"
        "assert value.__module__.startswith('tuspipe.compat'), value.__module__\n"
        "print(value.__module__ + '.' + value.__qualname__)\n"
    )
    ran = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip().endswith("." + compat_expression.rsplit(".", 1)[-1])


# --------------------------------------------------------------------------------------------
# The layering rule: compat is built on tuspipe's public API only
# --------------------------------------------------------------------------------------------

COMPAT_ROOT = Path(tuspipe.__file__).parent / "compat"
ALLOWED_IMPORTS = {"tuspipe", "trio"}


def _compat_sources() -> list[Path]:
    return sorted(COMPAT_ROOT.rglob("*.py"))


@pytest.mark.parametrize("source", _compat_sources(), ids=lambda p: str(p.relative_to(COMPAT_ROOT)))
def test_compat_uses_only_the_public_api(source: Path) -> None:
    tree = ast.parse(source.read_text(), str(source))
    public = set(tuspipe.__all__)
    standard = sys.stdlib_module_names
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            roots = [node.module or ""]
            if node.module == "tuspipe":
                assert {alias.name for alias in node.names} <= public
        else:
            roots = []
        for root in roots:
            top = root.split(".")[0]
            assert top in ALLOWED_IMPORTS or top in standard, f"{source.name} imports {root}"
            assert not root.startswith("tuspipe.") or root.startswith("tuspipe.compat"), root
        # every tuspipe.<name> used is a public name
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "tuspipe"
        ):
            assert node.attr in public, f"{source.name} uses tuspipe.{node.attr}"
