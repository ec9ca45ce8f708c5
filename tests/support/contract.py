"""Contract checks of `POST /chatkit` against the checked-in `openapi/openapi.json`.

An independent validator (`jsonschema`, Draft 2020-12, the dialect of OpenAPI 3.1 schemas) reads the
spec's own components: the request union `ChatKitRequest`, each request type's answer from the
operation's `x-chatkit-answers`, the stream's event schema from `x-item-schema`, and `Problem` for
problem+json answers. Nothing here imports the server's pydantic models: a spec that drifted from
what the server sends fails here.

`install()` hooks httpx's `Client.send` and `AsyncClient.send` for the whole test session, so every
request any test sends to `/chatkit` over httpx (the shared `ChatKitClient`, plain `http.post`,
`http.stream`, Litestar's in-process test client) is checked, and every SSE frame is checked as it
is read. Rules:
- a request the server accepted (2xx) must be valid against `ChatKitRequest`; one it refused is
  counted, not failed (tests send invalid bodies on purpose). Tests that send requests outside the
  spec on purpose and may still get a 2xx (fuzzers) mark that intent with
  `@pytest.mark.chatkit_off_spec_requests`: their requests are counted, not failed;
- a 2xx JSON answer must match the answer of its request type, a 2xx stream must be an event
  stream whose every `data:` frame is a `ChatKitEvent`;
- a problem+json answer must be a `Problem` and its status one the operation documents;
- a `threads.custom_action` whose action is one of TaskPilot's (`x-widget-actions`) but breaks its
  schema must change nothing (an `error` event, or no tasks-changed `client_effect`).
A mismatch raises `ContractViolation` where it is seen and is recorded against the running test,
which fails at teardown even if the test swallowed the exception.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator, ValidationError, validators
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
SPEC_URI = "urn:taskpilot:openapi"
PATH = "/chatkit"


class ContractViolation(AssertionError):
    """What the suite sent or received on /chatkit is not what openapi/openapi.json promises."""


@dataclass
class Tally:
    counts: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    off_spec: bool = False  # the running test sends off-spec requests on purpose

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def violation(self, message: str) -> ContractViolation:
        with self.lock:
            self.violations.append(message)
        return ContractViolation(message)


TALLY = Tally()


@dataclass(frozen=True)
class Spec:
    operation: dict[str, Any]
    registry: Registry[Any]

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        # Formats asserted too (uuid, date-time when its checker is installed, ...): OpenAPI leaves
        # that to the validator, and a stricter check catches more drift.
        return TaggedUnionValidator(schema, registry=self.registry, format_checker=Draft202012Validator.FORMAT_CHECKER)

    def component(self, name: str) -> Draft202012Validator:
        return self.validator({"$ref": f"{SPEC_URI}#/components/schemas/{name}"})


# ---- tagged unions, decided by their tag ------------------------------------------------------------
#
# Draft 2020-12's `oneOf` tries every member, and after a valid one tries all the others to show
# that none is valid too. The spec's unions (events, thread items, widget components) nest, and the
# widget components' children are unions of the components again: a task-list widget took 0.6 s of
# CPU to check, a plain event 2-7 ms, and the 200-user load test spent more CPU checking frames than
# doing everything else. Its unions are tagged (OpenAPI's `discriminator`): every member is a `$ref`
# to a schema whose property `type` (say) is a `const` of its own. Then an instance whose `type` is
# one member's tag fails every other member (its `const` does not match), so the union (`oneOf` or
# `anyOf`) holds exactly when that member does: the same verdict, checked once. Any other union, or
# an instance without a known tag, is checked by Draft 2020-12's own keyword.

_MISSING = object()


@cache
def _spec_document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return document


def _const_properties(ref: str) -> dict[str, str]:
    """The string `const` properties of the spec component `ref` names (absolute or `#/...`)."""
    if not ref.startswith((SPEC_URI + "#/", "#/")):
        return {}
    node: Any = _spec_document()
    for part in ref.split("#/", 1)[1].split("/"):
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    properties = node.get("properties") if isinstance(node, dict) else None
    if not isinstance(properties, dict):
        return {}
    return {
        name: prop["const"]
        for name, prop in properties.items()
        if isinstance(prop, dict) and isinstance(prop.get("const"), str)
    }


@cache
def union_tags(refs: tuple[str | None, ...]) -> tuple[str, dict[str, int]] | None:
    """For a union of these members (each a bare `$ref`; None: not one): the tag property and the
    member of each tag value, when every member has a distinct `const` there; else None."""
    if len(refs) < 2 or any(ref is None for ref in refs):
        return None
    consts = [_const_properties(ref) for ref in refs if ref is not None]
    for name in sorted(set.intersection(*(set(c) for c in consts))):
        by_value = {c[name]: index for index, c in enumerate(consts)}
        if len(by_value) == len(refs):
            return name, by_value
    return None


def _bare_ref(member: Any) -> str | None:
    """The `$ref` of a member that is nothing but one, else None."""
    ref = member.get("$ref") if isinstance(member, dict) and len(member) == 1 else None
    return ref if isinstance(ref, str) else None


def _tagged_member(one_of: Any, instance: Any) -> int | None:
    """The one member of `one_of` that can hold `instance`, by its tag; None: check them all."""
    if not isinstance(instance, dict) or not isinstance(one_of, list):
        return None
    refs = tuple(_bare_ref(member) for member in one_of)
    tags = union_tags(refs)
    if tags is None:
        return None
    value = instance.get(tags[0], _MISSING)
    return tags[1].get(value) if isinstance(value, str) else None


def _by_tag(keyword: str) -> Callable[[Any, Any, Any, Any], Iterator[ValidationError]]:
    """Draft 2020-12's `keyword` (`oneOf`, `anyOf`), decided by the tagged member when there is one."""
    draft = Draft202012Validator.VALIDATORS[keyword]

    def check(validator: Any, members: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
        member = _tagged_member(members, instance)
        if member is None:
            yield from draft(validator, members, instance, schema)
        else:
            yield from validator.descend(instance, members[member], schema_path=member)

    return check


TaggedUnionValidator = validators.extend(Draft202012Validator, {"oneOf": _by_tag("oneOf"), "anyOf": _by_tag("anyOf")})


def _absolute(schema: Any) -> Any:
    """A schema from inside the spec with its `#/...` references made absolute (spec-rooted)."""
    if isinstance(schema, dict):
        return {
            key: (
                SPEC_URI + value
                if key == "$ref" and isinstance(value, str) and value.startswith("#")
                else _absolute(value)
            )
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_absolute(item) for item in schema]
    return schema


@cache
def spec() -> Spec:
    document = json.loads(SPEC_PATH.read_text())
    resource = Resource(contents=document, specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
    return Spec(operation=document["paths"][PATH]["post"], registry=registry)


@cache
def request_validator() -> Draft202012Validator:
    body = spec().operation["requestBody"]["content"]["application/json"]["schema"]
    return spec().validator(_absolute(body))


@cache
def answer_validator(kind: str, media_type: str) -> Draft202012Validator | None:
    """The validator of the `media_type` answer of request type `kind` (None: not documented)."""
    answers: dict[str, dict[str, Any]] = spec().operation["x-chatkit-answers"]
    if kind not in answers or media_type not in answers[kind]:
        return None
    if media_type == "text/event-stream":
        stream = spec().operation["responses"]["200"]["content"]["text/event-stream"]
        item = stream["x-item-schema"]
        return spec().validator(_absolute(item["properties"]["data"]["contentSchema"]))
    return spec().validator(_absolute(answers[kind][media_type]))


def problem_validator(status: int) -> Draft202012Validator | None:
    documented = spec().operation["responses"].get(str(status))
    if documented is None:
        return None
    schema = documented["content"]["application/problem+json"]["schema"]
    return spec().validator(_absolute(schema))


def _tagged_branch(error: ValidationError) -> list[ValidationError] | None:
    """For a failed oneOf/anyOf of tagged members: the errors of the member whose `type` matched."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    matched = [
        errors
        for errors in branches.values()
        if not any(e.validator == "const" and list(e.relative_path) == ["type"] for e in errors)
    ]
    return matched[0] if len(matched) == 1 else None


def _explain(error: ValidationError) -> list[ValidationError]:
    """The errors that say what is wrong: inside the tagged member that was meant, if any."""
    if error.validator in ("oneOf", "anyOf"):
        branch = _tagged_branch(error)
        if branch:
            return [leaf for sub in branch for leaf in _explain(sub)]
    return [error]


def errors_of(validator: Draft202012Validator, instance: Any) -> list[str]:
    found = [leaf for error in validator.iter_errors(instance) for leaf in _explain(error)]
    found.sort(key=lambda e: [str(part) for part in e.absolute_path])
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message[:300]}" for e in found[:5]]


def check_request(body: Any) -> list[str]:
    """What is wrong with a request body (decoded JSON) by the spec; empty when valid."""
    return errors_of(request_validator(), body)


def check_event(frame: str, kind: str = "threads.create") -> list[str]:
    """What is wrong with one SSE `data:` frame by the spec's event schema."""
    try:
        event = json.loads(frame)
    except ValueError:
        return [f"not JSON: {frame[:200]!r}"]
    validator = answer_validator(kind, "text/event-stream")
    if validator is None:
        return [f"{kind} has no documented event stream"]
    return errors_of(validator, event)


def check_answer(kind: str, answer: Any) -> list[str]:
    validator = answer_validator(kind, "application/json")
    if validator is None:
        return [f"{kind} has no documented application/json answer"]
    return errors_of(validator, answer)


class SseFrames:
    """An incremental SSE parser: feed bytes, get each complete `data:` payload."""

    def __init__(self) -> None:
        self.buffer = ""

    def feed(self, chunk: bytes) -> list[str]:
        self.buffer += chunk.decode("utf-8")
        frames = []
        while "\n\n" in self.buffer:
            block, self.buffer = self.buffer.split("\n\n", 1)
            data = [line[len("data: ") :] for line in block.split("\n") if line.startswith("data: ")]
            if data:
                frames.append("\n".join(data))
        return frames


# ---- the httpx hook ----------------------------------------------------------------------------


def _kind_of(request: httpx.Request) -> tuple[str | None, Any]:
    try:
        content = request.content
    except httpx.RequestNotRead:
        return None, None
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser follows
        TALLY.count("requests not JSON or too deep (unchecked)")
        return None, None
    kind = body.get("type") if isinstance(body, dict) else None
    return (kind if isinstance(kind, str) else None), body


def _where(request: httpx.Request, kind: str | None) -> str:
    return f"POST {request.url.path} ({kind or 'no type'})"


def check_exchange_head(request: httpx.Request, response: httpx.Response) -> str | None:
    """Check the request against the answer's status; returns the request type when the body
    still has to be checked (None when there is nothing more to check)."""
    kind, body = _kind_of(request)
    where = _where(request, kind)
    ok = 200 <= response.status_code < 300
    if body is not None:
        try:
            problems = check_request(body)
        except RecursionError:
            problems = ["nested deeper than the validator follows"]
        if not problems:
            TALLY.count("requests valid")
        elif not ok:
            TALLY.count("requests off-spec, refused")
        elif TALLY.off_spec:
            TALLY.count("requests off-spec, accepted (marked)")
        else:
            raise TALLY.violation(f"{where}: the server accepted a request the spec refuses: {problems}")
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if not ok:
        if media == "application/problem+json":
            return kind
        TALLY.count(f"answers {response.status_code} {media or 'no body'} (undocumented media, unchecked)")
        return None
    if kind is None:
        raise TALLY.violation(f"{where}: a 2xx answer to a request with no type")
    if answer_validator(kind, media) is None:
        raise TALLY.violation(f"{where}: answered {response.status_code} {media}, which the spec does not document")
    if response.headers.get("content-encoding"):
        TALLY.count("answers compressed (unchecked)")
        return None
    return kind


def check_exchange_body(request: httpx.Request, response: httpx.Response, kind: str, content: bytes) -> None:
    where = _where(request, kind)
    media = response.headers.get("content-type", "").split(";")[0].strip()
    if media == "application/problem+json":
        validator = problem_validator(response.status_code)
        if validator is None:
            raise TALLY.violation(f"{where}: a {response.status_code} problem the spec does not document")
        problems = errors_of(validator, json.loads(content))
        if problems:
            raise TALLY.violation(f"{where}: {response.status_code} problem+json: {problems}")
        TALLY.count("problem answers valid")
        return
    problems = check_answer(kind, json.loads(content) if content else None)
    if problems:
        raise TALLY.violation(f"{where}: JSON answer: {problems}")
    TALLY.count("JSON answers valid")


def _check_frames(where: str, kind: str, frames: list[str], seen: set[str] | None = None) -> None:
    for frame in frames:
        problems = check_event(frame, kind)
        if problems:
            raise TALLY.violation(f"{where}: SSE frame {frame[:300]}: {problems}")
        TALLY.count("SSE frames valid")
        if seen is not None:
            seen.add(str(json.loads(frame).get("type")))


@cache
def widget_actions() -> tuple[frozenset[str], Draft202012Validator]:
    """TaskPilot's widget actions (`x-widget-actions`): their types and their validator."""
    schema = spec().operation["x-widget-actions"]
    name = schema["$ref"].rsplit("/", 1)[1]
    document = json.loads(SPEC_PATH.read_text())
    mapping = document["components"]["schemas"][name]["discriminator"]["mapping"]
    return frozenset(mapping), spec().validator(_absolute(schema))


def check_widget_action(action: Any) -> list[str] | None:
    """What is wrong with a custom action by `x-widget-actions`; None when it is not TaskPilot's."""
    types, validator = widget_actions()
    if not isinstance(action, dict) or action.get("type") not in types:
        return None
    return errors_of(validator, action)


def _refused_action(request: httpx.Request, kind: str) -> list[str] | None:
    """The problems of a TaskPilot widget action the request carries (None: none, or valid)."""
    if kind != "threads.custom_action":
        return None
    _, body = _kind_of(request)
    params = body.get("params") if isinstance(body, dict) else None
    problems = check_widget_action(params.get("action") if isinstance(params, dict) else None)
    if problems == []:
        TALLY.count("widget actions valid")
    return problems or None


class _CheckedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner: Any, on_chunk: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self.inner, self.on_chunk, self.on_end = inner, on_chunk, on_end

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            self.on_chunk(chunk)
            yield chunk
        self.on_end()

    async def aclose(self) -> None:
        await self.inner.aclose()


class _CheckedSyncStream(httpx.SyncByteStream):
    def __init__(self, inner: Any, on_chunk: Callable[[bytes], None], on_end: Callable[[], None]) -> None:
        self.inner, self.on_chunk, self.on_end = inner, on_chunk, on_end

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.on_chunk(chunk)
            yield chunk
        self.on_end()

    def close(self) -> None:
        self.inner.close()


def watch(request: httpx.Request, response: httpx.Response) -> None:
    """Check one exchange with /chatkit: now for what is read already, as it is read otherwise."""
    if request.method != "POST" or request.url.path != PATH:
        return
    kind = check_exchange_head(request, response)
    if kind is None:
        return
    where = _where(request, kind)
    media = response.headers.get("content-type", "").split(";")[0].strip()
    streaming = media == "text/event-stream"
    # A widget action outside `x-widget-actions` must change nothing: its stream carries an `error`
    # event, or at least no `client_effect` (the tasks-changed signal; a refused edit form is
    # redrawn with its error instead).
    refused_action = _refused_action(request, kind) if streaming else None
    seen: set[str] = set()

    def check_refused() -> None:
        if refused_action is None:
            return
        if "error" not in seen and "client_effect" in seen:
            raise TALLY.violation(f"{where}: a widget action the spec refuses changed tasks: {refused_action}")
        TALLY.count("widget actions off-spec, refused")

    if hasattr(response, "_content"):  # already read (send without stream=True)
        if streaming:
            parser = SseFrames()
            _check_frames(where, kind, parser.feed(response.content), seen)
            check_refused()
        else:
            check_exchange_body(request, response, kind, response.content)
        return
    parser = SseFrames()
    buffered = bytearray()

    def on_chunk(chunk: bytes) -> None:
        if streaming:
            _check_frames(where, kind, parser.feed(chunk), seen)
        else:
            buffered.extend(chunk)

    def on_end() -> None:
        if streaming:
            check_refused()
        else:
            check_exchange_body(request, response, kind, bytes(buffered))

    stream: Any = response.stream
    wrapper = _CheckedAsyncStream if isinstance(stream, httpx.AsyncByteStream) else _CheckedSyncStream
    response.stream = wrapper(stream, on_chunk, on_end)


_installed = False


def install() -> None:
    """Check every /chatkit exchange of this process (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    async_send = httpx.AsyncClient.send
    sync_send = httpx.Client.send

    async def checked_async_send(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        try:
            watch(request, response)
        except ContractViolation:
            await response.aclose()
            raise
        return response

    def checked_sync_send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        try:
            watch(request, response)
        except ContractViolation:
            response.close()
            raise
        return response

    httpx.AsyncClient.send = checked_async_send  # type: ignore[method-assign]
    httpx.Client.send = checked_sync_send  # type: ignore[method-assign]
