"""The lean model transport (`MODEL_TRANSPORT=lean`): the Responses API over one pooled HTTP client.

Why: the stock path (the openai client under the Agents SDK's `OpenAIResponsesModel`) spends most
of a streamed text delta's CPU in the client: its SSE decoder, httpx2/anyio streaming, and a
validated pydantic event per delta (0.38-0.55 ms per delta, the performance issue's profile). And
it only gets that far through private methods of the client (`providers.ResponsesClient`).

What stays the SDK's: `LeanResponsesModel` is the SDK's `OpenAIResponsesModel` with only its
transport (`_fetch_response`, the seam the SDK's own websocket model overrides) replaced, so the
request body, the run loop's handling of terminal events, spans and usage are the SDK's own code.
What is ours: the HTTP request (one httpcore pool per process, sent to directly; httpx's client
when a proxy is configured), one SSE parser, msgspec for each event's JSON, and the event objects:
the per-token deltas built with `model_construct` (no validation), every other event (a handful
per response) parsed exactly as the stock path parses it (`stream_events.parse_stream_event`).
Failures are the openai package's own exception classes, built as its client builds them, so
`ops.openai_failures` reads them unchanged; the retry rule (429, 408, 409, 5xx, a dropped
connection; Retry-After honoured up to two minutes) and the turn's retry notice are the stock path's.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any, Final, Literal, Protocol, TypeVar, cast

import httpcore
import httpx
import msgspec
import openai
import pydantic
from agents.models._response_terminal import response_terminal_failure_error
from agents.models._retry_runtime import should_disable_provider_managed_retries
from agents.models.openai_responses import (
    OpenAIResponsesModel,
    _mark_transport_request_without_usage,
    _ResponseStreamWithRequestId,
)
from openai import APIConnectionError, APIError, APIStatusError, APITimeoutError, Omit
from openai.types.responses import (
    Response,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseReasoningSummaryTextDeltaEvent,
    ResponseReasoningTextDeltaEvent,
    ResponseRefusalDeltaEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)

from app.agents import response_json
from app.agents.chatkit import notices
from app.agents.net import AsyncioTransport, HttpxBody, httpx_error, proxied
from app.agents.sdk_json import JSON_SCALARS
from app.agents.stream_events import parse_stream_event

logger = logging.getLogger(__name__)
# httpx's own logger: the direct path writes the line httpx's client writes per request (seen at DEBUG).
httpx_logger = logging.getLogger("httpx")

T = TypeVar("T")
Pairs = tuple[tuple[str, str], ...]  # a request's extra headers, in their order

# The openai client's retry rule (its `_calculate_retry_timeout`, `_should_retry`).
INITIAL_RETRY_DELAY: Final = 0.5
MAX_RETRY_DELAY: Final = 8.0
MAX_RETRY_AFTER_DELAY: Final = 120.0
# The pool: up to 1000 streams at once, 100 idle connections kept (httpx's 5 s keep-alive expiry).
LIMITS: Final = httpx.Limits(max_connections=1000, max_keepalive_connections=100)

# The per-token events: flat (no nested model to build), most of a stream, and built unvalidated.
_DELTAS: Final[dict[str, type[Any]]] = {
    "response.output_text.delta": ResponseTextDeltaEvent,
    "response.function_call_arguments.delta": ResponseFunctionCallArgumentsDeltaEvent,
    "response.reasoning_summary_text.delta": ResponseReasoningSummaryTextDeltaEvent,
    "response.reasoning_text.delta": ResponseReasoningTextDeltaEvent,
    "response.refusal.delta": ResponseRefusalDeltaEvent,
}
# Request options the SDK passes to the openai client beside the body.
_CONTROL_KEYS: Final = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})
# pydantic's own `model_construct`: the openai package's models override it with a walk that builds
# each nested value by its type (~130 us a delta; a delta has nothing nested to build but `logprobs`,
# left as the JSON's lists and dicts, which neither the SDK nor ChatKit reads).
_construct = pydantic.BaseModel.model_construct.__func__  # type: ignore[attr-defined]
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _jsonable(value: Any) -> Any:
    """`value` as the openai client writes it into a body: pydantic models dumped the way its
    request transform dumps them; the plain JSON the SDK builds (the bulk) left as it is."""
    # The plain JSON the SDK builds tested by exact type first: most of a body's values (each tool's
    # JSON schema, walked at every model call) are these; an `isinstance` against the ABCs and the
    # pydantic base per scalar was ~0.3 ms of a turn's CPU.
    kind = type(value)
    if kind in JSON_SCALARS:
        return value
    if kind is dict:
        return {k: _jsonable(v) for k, v in value.items() if not isinstance(v, Omit)}
    if kind is list:
        return [_jsonable(v) for v in value]
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(exclude_unset=True, mode="json", exclude=getattr(value, "__api_exclude__", None))
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if not isinstance(v, Omit)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def request_body(create_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON body the openai client would send for `responses.create(**create_kwargs)`."""
    body = {k: _jsonable(v) for k, v in create_kwargs.items() if k not in _CONTROL_KEYS and not isinstance(v, Omit)}
    extra_body = create_kwargs.get("extra_body")
    if isinstance(extra_body, Mapping):
        body.update(extra_body)
    return body


class _NotPlain(Exception):
    """A value `_jsonable` would change other than a pydantic model: an `Omit` below the top level."""


def _model_dump(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(exclude_unset=True, mode="json", exclude=getattr(value, "__api_exclude__", None))
    raise _NotPlain


_encode_plain = msgspec.json.Encoder(enc_hook=_model_dump).encode


def encoded_body(create_kwargs: Mapping[str, Any]) -> bytes:
    """`request_body(create_kwargs)` as JSON bytes. Why not always the walk: the body is almost all
    plain JSON (each tool's schema, the history) that msgspec encodes as it is, in C; walking it in
    Python first was ~0.22 ms of CPU a turn (2 bodies) of ~0.25. So msgspec encodes it directly, a
    pydantic model dumped as `_jsonable` dumps it; an `Omit` below the top level (which the walk
    drops with its key) or an `extra_body` (merged unwalked) leaves it to the walk."""
    if not create_kwargs.get("extra_body"):
        try:
            return _encode_plain(
                {k: v for k, v in create_kwargs.items() if k not in _CONTROL_KEYS and not isinstance(v, Omit)}
            )
        except _NotPlain:
            pass
    return _encode(request_body(create_kwargs))


def _retry_after(headers: httpx.Headers | None) -> float | None:
    """Seconds a `retry-after-ms` / `retry-after` header asks for (number or HTTP date)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    value = headers.get("retry-after")
    if value is None:
        return None
    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed) - time.time())


def retry_wait(retries_taken: int, headers: httpx.Headers | None) -> float:
    """How long to wait before retry `retries_taken + 1`: the server's word up to two minutes,
    else exponential backoff from 0.5 s (at most 8 s) less up to 25% jitter."""
    after = _retry_after(headers)
    if after is not None and math.isfinite(after) and 0 < after <= MAX_RETRY_AFTER_DELAY:
        return after
    backoff = min(INITIAL_RETRY_DELAY * 2.0 ** min(retries_taken, 1000), MAX_RETRY_DELAY)
    return max(0.0, backoff * (1 - 0.25 * random.random()))


def should_retry(response: httpx.Response) -> bool:
    after = _retry_after(response.headers)
    if after is not None and math.isfinite(after) and after > MAX_RETRY_AFTER_DELAY:
        return False
    explicit: str | None = response.headers.get("x-should-retry")
    if explicit in ("true", "false"):
        return explicit == "true"
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def status_error(response: httpx.Response, raw: bytes) -> APIStatusError:
    """The openai package's exception for an error answer, built as its client builds it."""
    text = raw.decode(errors="replace").strip()
    body: object = text
    try:
        body = _decode(raw) if raw else text
    except msgspec.DecodeError:
        body = text
    message = f"Error code: {response.status_code} - {body}"
    data = body.get("error", body) if isinstance(body, Mapping) else body
    by_status: dict[int, type[APIStatusError]] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    kind = by_status.get(response.status_code) or (
        openai.InternalServerError if response.status_code >= 500 else APIStatusError
    )
    # openai types `response` as its httpx2 fork's; it reads only `request`, `status_code`, `headers`.
    return kind(message, response=cast(Any, response), body=data)


def stream_event(data: dict[str, Any]) -> ResponseStreamEvent:
    """One Responses stream event from its decoded JSON."""
    member = _DELTAS.get(data.get("type"))  # type: ignore[arg-type]
    if member is not None:
        return cast(ResponseStreamEvent, _construct(member, **data))
    return parse_stream_event(data)


async def sse_data(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The `data` of each server-sent event in a byte stream (multi-line data joined by "\\n";
    `event:`, `id:` and comment lines ignored: each Responses event names its type in its data)."""
    # What was read since the last event's end; joined only once the next end has arrived, so an
    # event that comes in many reads (a long completed response) costs its length once, not per read.
    parts: list[bytes] = []
    ends_with_lf = False
    after_cr = False  # the last read ended with "\r": a "\n" opening the next one is its pair
    async for chunk in chunks:
        if not chunk:
            continue
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        ended = b"\n\n" in chunk or (ends_with_lf and chunk.startswith(b"\n"))
        if chunk:
            parts.append(chunk)
            ends_with_lf = chunk.endswith(b"\n")
        if not ended:
            continue
        buffer = parts[0] if len(parts) == 1 else b"".join(parts)
        start = 0
        while (end := buffer.find(b"\n\n", start)) != -1:
            data = _event_data(buffer[start:end])
            start = end + 2
            if data is not None:
                yield data
        rest = buffer[start:]
        parts = [rest] if rest else []
        ends_with_lf = rest.endswith(b"\n")
    buffer = b"".join(parts)
    if buffer.strip():
        data = _event_data(buffer)
        if data is not None:
            yield data


def _event_data(block: bytes) -> bytes | None:
    lines = [
        line[5:].removeprefix(b" ") if line.startswith(b"data:") else None
        for line in block.split(b"\n")
        if line.startswith(b"data:")
    ]
    return b"\n".join(cast(list[bytes], lines)) if lines else None


class Headers(Protocol):
    def get(self, name: str, /) -> str | None: ...


class Answer(Protocol):
    """What `Transport.send` answers: an `httpx.Response` (httpx's path), or a `DirectAnswer`."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Headers: ...

    @property
    def request(self) -> httpx.Request: ...

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


def transport_failure(exc: Exception, request: Callable[[], httpx.Request]) -> APIConnectionError | None:
    """The openai package's exception for a request or answer that failed in transit, as its client
    raises it: a timeout as `APITimeoutError`, any other transport failure as `APIConnectionError`,
    its cause the httpx exception (httpcore's named as `httpx.AsyncHTTPTransport` names it, with the
    request, as httpx's client gives it); None for anything else. `request` is called only then."""
    cause: Exception = exc
    if not isinstance(exc, httpx.TransportError):
        mapped = httpx_error(exc)  # httpcore's (the direct path), or None
        if not isinstance(mapped, httpx.TransportError):
            return None
        mapped.__cause__ = exc
        mapped.__suppress_context__ = True
        mapped.request = request()
        cause = mapped
    failure: APIConnectionError
    if isinstance(cause, httpx.TimeoutException):
        failure = APITimeoutError(request=cast(Any, request()))
    else:
        failure = APIConnectionError(request=cast(Any, request()))
    failure.__cause__ = cause
    failure.__suppress_context__ = True
    return failure


class DirectAnswer:
    """An answer read straight from httpcore's pool (the direct path of `Transport.send`): its status,
    its headers (names lower-cased, repeated ones joined by ", " as httpx joins them) and its body as
    httpcore reads it, without httpx's response object and the four generator layers around each
    read; an identity body only (`Transport` gives an encoded one to httpx to decode)."""

    __slots__ = ("_request", "_request_of", "_stream", "headers", "raw_headers", "status_code")

    def __init__(
        self,
        status_code: int,
        raw_headers: list[tuple[bytes, bytes]],
        stream: Any,
        request_of: Callable[[], httpx.Request],
    ) -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.headers = _header_map(raw_headers)
        self._stream = stream  # httpcore's response body: an async iterable of bytes with `aclose`
        self._request_of = request_of
        self._request: httpx.Request | None = None

    @property
    def request(self) -> httpx.Request:
        """The request as httpx would have built it: made only when a failure needs it."""
        if self._request is None:
            self._request = self._request_of()
        return self._request

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return cast(AsyncIterator[bytes], self._stream.__aiter__())

    async def aread(self) -> bytes:
        return b"".join([part async for part in self._stream])

    async def aclose(self) -> None:
        await self._stream.aclose()


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def json_body(response: Answer) -> Any:
    """The decoded JSON of a non-streamed answer; a body that breaks off fails as a streamed one does."""
    try:
        raw = await response.aread()
    except Exception as exc:
        failure = transport_failure(exc, lambda: response.request)
        if failure is None:
            raise
        raise failure from failure.__cause__
    finally:
        await response.aclose()
    return _decode(raw)


async def sse_payloads(response: Answer, build: Callable[[Any], T]) -> AsyncGenerator[T]:
    """`build` of the decoded JSON of each event of a streamed answer, up to `data: [DONE]` or the
    body's end, as the openai client's stream reads them: an `{"error": ...}` event raised as its
    `APIError`, a transport failure as its timeout or connection error; the answer closed at the
    end. (`build` is applied here rather than by the caller's own generator around this one: one
    async generator hop fewer for every event of the stream.)"""
    try:
        async for data in sse_data(response.aiter_bytes()):
            if data.startswith(b"[DONE]"):
                break
            payload = _decode(data)
            if isinstance(payload, dict) and payload.get("error"):
                error = payload["error"]
                message = error.get("message") if isinstance(error, Mapping) else None
                if not isinstance(message, str) or not message:
                    message = "An error occurred during streaming"
                raise APIError(message=message, request=cast(Any, response.request), body=error)
            yield build(payload)
    except Exception as exc:
        failure = transport_failure(exc, lambda: response.request)
        if failure is None:
            raise
        raise failure from failure.__cause__
    finally:
        await response.aclose()


class Transport:
    """One pooled HTTP client per process and the retry loop around a request.

    Two ways to send. Direct (the default, no proxy configured): the request goes straight to the
    httpcore pool of our `AsyncioTransport`, on the wire exactly as httpx's client would send it
    (the same headers in the same order, its timeouts, its cookie jar), and the answer is read from
    httpcore (`DirectAnswer`). Why: httpx's `AsyncClient.send` (its Request and Response objects,
    auth, hooks, redirects, the cookie jar, a generator per read) was about 1.7 ms of a turn's two
    requests on the 2-CPU machine. Through httpx (a proxy configured, or a transport given): httpx's
    client as it is, which knows proxies and NO_PROXY.
    """

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        timeout_seconds: float,
        max_retries: int,
        headers: Mapping[str, object] | None = None,
        http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """`headers`: sent with every request (the stock client's `default_headers`: its user agent,
        `OpenAI-Organization` / `OpenAI-Project` when configured); `http_transport`: what the HTTP
        client sends with (tests give a scripted one)."""
        self.base_url = (base_url or "https://api.openai.com/v1").rstrip("/")
        self.api_key = api_key
        # (The openai client's own header map marks the headers it leaves out with `Omit`.)
        self.headers = {k: v for k, v in (headers or {}).items() if isinstance(v, str)}
        self.max_retries = max_retries
        self.timeout = httpx.Timeout(timeout_seconds)
        self._http_transport = http_transport
        self._client: httpx.AsyncClient | None = None
        # The direct path's pool (None: send through httpx's client), set with the client.
        self._direct: AsyncioTransport | None = None
        self._timeouts = {"timeout": self.timeout.as_dict()}  # httpx's request extension, as httpcore reads it
        # Per path, Accept and extra headers: the URL httpcore is given and the head httpx would send
        # before its Cookie and Content-Length headers (a few entries: the SDK's headers vary little).
        self._heads: dict[tuple[str, bool, Pairs], tuple[httpcore.URL, list[tuple[bytes, bytes]]]] = {}

    @property
    def client(self) -> httpx.AsyncClient:
        # Made on first use, inside the server's event loop, and kept for the process.
        if self._client is None:
            transport = self._http_transport
            if transport is None and not proxied():
                # Our asyncio sockets under httpcore (`app.agents.net`: less CPU per streamed read).
                # With a proxy configured, httpx's own transport: it reads HTTP(S)_PROXY, ALL_PROXY
                # and NO_PROXY, which a client given a transport no longer does.
                transport = self._direct = AsyncioTransport(LIMITS)
            self._client = httpx.AsyncClient(transport=transport, timeout=self.timeout, limits=LIMITS)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._direct = None

    async def send(self, path: str, create_kwargs: Mapping[str, Any], *, stream: bool) -> Answer:
        """The answer's response (headers read; the body not yet when `stream`), after the
        retries the openai client would make; an openai exception when there is no good answer."""
        body = encoded_body(create_kwargs)
        extra = tuple((k, v) for k, v in (create_kwargs.get("extra_headers") or {}).items() if isinstance(v, str))
        query = create_kwargs.get("extra_query") or None
        client = self.client
        direct = self._direct

        def build_request() -> httpx.Request:
            return client.build_request(
                "POST", f"{self.base_url}{path}", content=body, headers=self._headers(stream, extra), params=query
            )

        sent: httpx.Request | None = None  # the request httpx sends, or built only if a failure needs it
        if direct is None or query is not None:  # (a query string: rare enough to leave to httpx)
            sent = build_request()

            async def send() -> Answer:
                return await client.send(cast(httpx.Request, sent), stream=True)
        else:
            core_request = self._core_request(path, stream, extra, body)
            pool = direct

            async def send() -> Answer:
                return await self._send_direct(pool, core_request, build_request)

        def request_of() -> httpx.Request:
            nonlocal sent
            if sent is None:
                sent = build_request()
            return sent

        max_retries = 0 if should_disable_provider_managed_retries() else self.max_retries
        retries_taken = 0
        while True:
            response: httpx.Response | None = None
            failure: Exception
            try:
                answer: Answer = await send()
            except Exception as exc:
                mapped = transport_failure(exc, request_of)
                if mapped is None:
                    raise
                failure = mapped
            else:
                if answer.status_code < 400:
                    return answer
                # (httpx's response, read, as the openai exception carries it.)
                response = answer if isinstance(answer, httpx.Response) else _httpx_response(cast(DirectAnswer, answer))
                try:
                    raw = await response.aread()
                except httpx.TransportError:
                    raw = b""  # the status still says what failed; the body broke off
                finally:
                    await response.aclose()
                failure = status_error(response, raw)
                if not should_retry(response):
                    raise failure
            if retries_taken >= max_retries:
                raise failure
            headers_seen = response.headers if response is not None else None
            wait = retry_wait(retries_taken, headers_seen)
            turn = notices.current.get()
            if turn is not None:
                status = response.status_code if response is not None else None
                await turn.retrying(attempt=retries_taken + 1, of=max_retries, wait=wait, status=status)
            logger.info("retrying model request (%s of %s) in %.2f s", retries_taken + 1, max_retries, wait)
            await asyncio.sleep(wait)
            retries_taken += 1

    def _headers(self, stream: bool, extra: Pairs) -> dict[str, str]:
        """The request's own headers (httpx's client adds its defaults, Host and Content-Length)."""
        return {
            **self.headers,
            "Authorization": f"Bearer {self.api_key}",
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
            **dict(extra),
        }

    def _core_request(self, path: str, stream: bool, extra: Pairs, body: bytes) -> httpcore.Request:
        """The request as httpx's client would hand it to httpcore: its URL, its headers in its order
        (Host, the client's defaults merged with ours, Cookie when the jar has any, Content-Length)."""
        key = (path, stream, extra)
        head = self._heads.get(key)
        if head is None:
            # httpx builds the head once (a non-empty body: Content-Length is then its last header).
            sample = httpx.Request("POST", f"{self.base_url}{path}", headers=self._merged(stream, extra), content=b"{}")
            parts = sample.url
            core_url = httpcore.URL(
                scheme=parts.raw_scheme, host=parts.raw_host, port=parts.port, target=parts.raw_path
            )
            raw = sample.headers.raw
            assert raw[-1][0].lower() == b"content-length"
            if len(self._heads) >= 64:  # (extra headers the SDK is given per call: keep the cache small)
                self._heads.clear()
            head = self._heads[key] = (core_url, raw[:-1])
        url, headers = head
        wire = list(headers)
        cookies = self.client.cookies
        if cookies.jar:  # as httpx's client sends its cookie jar (a server's Set-Cookie, kept)
            probe = httpx.Request("POST", f"{self.base_url}{path}")
            cookies.set_cookie_header(probe)
            cookie = probe.headers.get("Cookie")
            if cookie is not None:
                wire.append((b"Cookie", cookie.encode("latin-1")))
        wire.append((b"Content-Length", str(len(body)).encode()))
        return httpcore.Request(b"POST", url, headers=wire, content=body, extensions=self._timeouts)

    def _merged(self, stream: bool, extra: Pairs) -> httpx.Headers:
        merged = httpx.Headers(self.client.headers)
        merged.update(self._headers(stream, extra))
        return merged

    async def _send_direct(
        self, direct: AsyncioTransport, request: httpcore.Request, build_request: Callable[[], httpx.Request]
    ) -> Answer:
        """One exchange over the pool: httpcore's failures raised as they are (`transport_failure`
        names them); what httpx's client does with an answer kept (its cookie jar, its log line, its
        decoding of a compressed body)."""
        core = await direct.pool.handle_async_request(request)
        answer = DirectAnswer(core.status, core.headers, core.stream, build_request)
        encoded = answer.headers.get("content-encoding", "identity").strip().lower() != "identity"
        if encoded or "set-cookie" in answer.headers or httpx_logger.isEnabledFor(logging.INFO):
            response = _httpx_response(answer, core.extensions)
            if "set-cookie" in answer.headers:
                self.client.cookies.extract_cookies(response)
            httpx_logger.info(
                'HTTP Request: %s %s "%s %d %s"',
                response.request.method,
                response.request.url,
                response.http_version,
                response.status_code,
                response.reason_phrase,
            )
            if encoded:
                return response  # httpx decodes it (gzip, deflate, and brotli or zstd when installed)
        return answer


def _httpx_response(answer: DirectAnswer, extensions: Mapping[str, Any] | None = None) -> httpx.Response:
    """`answer` as httpx's response (its body still unread): what openai's exceptions and httpx's
    cookie jar and decoders take."""
    return httpx.Response(
        answer.status_code,
        headers=answer.raw_headers,
        stream=HttpxBody(answer._stream),
        extensions=dict(extensions or {}),
        request=answer.request,
    )


class LeanResponsesModel(OpenAIResponsesModel):
    """The SDK's Responses model, its requests sent by `Transport` (see the module's docstring).

    `openai_client` is still given: the SDK asks it whether the endpoint is OpenAI's own (for the
    prompt cache key and the tracing of response ids); it sends nothing.
    """

    def __init__(
        self, model: str, openai_client: openai.AsyncOpenAI, transport: Transport, *, model_is_explicit: bool = True
    ) -> None:
        super().__init__(model, openai_client, model_is_explicit=model_is_explicit)
        self.transport = transport

    async def _fetch_response(  # type: ignore[override]
        self,
        system_instructions: str | None,
        input: Any,
        model_settings: Any,
        tools: Any,
        output_schema: Any,
        handoffs: Any,
        previous_response_id: str | None = None,
        conversation_id: str | None = None,
        stream: Literal[True] | Literal[False] = False,
        prompt: Any = None,
    ) -> Response | AsyncIterator[ResponseStreamEvent]:
        create_kwargs = self._build_response_create_kwargs(
            system_instructions=system_instructions,
            input=input,
            model_settings=model_settings,
            tools=tools,
            output_schema=output_schema,
            handoffs=handoffs,
            previous_response_id=previous_response_id,
            conversation_id=conversation_id,
            stream=stream,
            prompt=prompt,
        )
        response = await self.transport.send("/responses", create_kwargs, stream=stream)
        request_id = response.headers.get("x-request-id")
        if not stream:
            # (As the openai client builds it, `construct_type`, for less: `response_json`.)
            parsed = response_json.response(await json_body(response))
            parsed._request_id = request_id
            if parsed.status in {"failed", "incomplete"}:
                raise response_terminal_failure_error(f"response.{parsed.status}", parsed)
            _mark_transport_request_without_usage(parsed)
            return parsed
        # The SDK's own wrapper: the request id on the terminal response, a completed response
        # without usage counted as the stock path counts it, and the stream closed once.
        events: AsyncIterator[ResponseStreamEvent] = sse_payloads(response, stream_event)
        return _ResponseStreamWithRequestId(events, request_id=request_id, cleanup=response.aclose)
