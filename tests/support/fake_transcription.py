"""A local stand-in for OpenAI's transcription API (`POST /v1/audio/transcriptions`) on 127.0.0.1.

It reads the multipart upload the `openai` SDK sends and refuses one without a `file` part or a
`model` field (400, as OpenAI does), checks the bearer key (401 with OpenAI's error body, which
quotes a masked key), records every upload, and can be told to fail with any status or to hang.
Each answer reports `usage` as OpenAI does: tokens (gpt-4o-transcribe and its kin), the seconds of
audio (whisper-1), or nothing (a lenient server): set `usage` to `TOKENS`, `DURATION`, None or any body.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.http_thread import serve_in_thread

PATH = "/v1/audio/transcriptions"
# What OpenAI reports for a token-billed model (input = audio + text prompt tokens) ...
TOKENS: dict[str, Any] = {
    "type": "tokens",
    "input_tokens": 57,
    "output_tokens": 11,
    "total_tokens": 68,
    "input_token_details": {"audio_tokens": 52, "text_tokens": 5},
}
# ... and for one billed by the duration of the audio.
DURATION: dict[str, Any] = {"type": "duration", "seconds": 3.25}


@dataclass
class Upload:
    model: str | None
    filename: str | None
    content_type: str | None
    data: bytes | None
    authorization: str


def error_body(message: str, *, type_: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, str | None, bytes]]:
    """name -> (filename, content type, bytes) of each part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts: dict[str, tuple[str | None, str | None, bytes]] = {}
    if not message.is_multipart():
        return parts
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            payload = part.get_payload(decode=True)
            parts[name] = (part.get_filename(), part.get_content_type(), payload if isinstance(payload, bytes) else b"")
    return parts


class FakeTranscription:
    def __init__(
        self, api_key: str, *, text: str = "buy oat milk tomorrow", usage: dict[str, Any] | None = DURATION
    ) -> None:
        self.api_key = api_key
        self.text = text
        self.usage = usage
        self.usage_sent: list[dict[str, Any] | None] = []  # the `usage` of each transcription answered
        self.uploads: list[Upload] = []
        self._failures: deque[int] = deque()
        self._hang_seconds = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                outer._handle(self)

            def log_message(self, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        serve_in_thread(self.httpd)

    def fail(self, status: int, *, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def hang(self, seconds: float) -> None:
        """Every request from now on waits `seconds` (or until stopped) before answering."""
        self._hang_seconds = seconds

    def stop(self) -> None:
        self._stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        if handler.path.split("?", 1)[0] != PATH:
            self._send(handler, 404, error_body(f"Unknown path {handler.path}", type_="invalid_request_error"))
            return
        parts = parse_multipart(handler.headers.get("Content-Type", ""), body)
        file_part = parts.get("file")
        model_part = parts.get("model")
        upload = Upload(
            model=model_part[2].decode() if model_part else None,
            filename=file_part[0] if file_part else None,
            content_type=file_part[1] if file_part else None,
            data=file_part[2] if file_part else None,
            authorization=handler.headers.get("Authorization", ""),
        )
        with self._lock:
            self.uploads.append(upload)
            failure = self._failures.popleft() if self._failures else None
        if self._hang_seconds:
            self._stopping.wait(self._hang_seconds)
        if upload.authorization != f"Bearer {self.api_key}" or failure == 401:
            presented = upload.authorization.removeprefix("Bearer ")
            masked = f"{presented[:3]}***{presented[-4:]}"
            body_out = error_body(
                f"Incorrect API key provided: {masked}.", type_="invalid_request_error", code="invalid_api_key"
            )
            self._send(handler, 401, body_out)
            return
        if failure is not None:
            self._send(handler, failure, error_body(f"Injected failure {failure}", type_="server_error"))
            return
        if not upload.model or upload.data is None or not upload.filename:
            self._send(handler, 400, error_body("'file' and 'model' are required", type_="invalid_request_error"))
            return
        usage = self.usage
        with self._lock:
            self.usage_sent.append(usage)
        self._send(handler, 200, {"text": self.text} if usage is None else {"text": self.text, "usage": usage})

    def _send(self, handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (the timeout test)
