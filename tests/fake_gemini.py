"""A local stand-in for the Gemini API: scripted answers for the real google-genai client."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def text_reply(
    text: str, prompt_tokens: int = 120, answer_tokens: int = 40, thoughts_tokens: int = 0
) -> tuple:
  usage = {
      "promptTokenCount": prompt_tokens,
      "candidatesTokenCount": answer_tokens,
      "totalTokenCount": prompt_tokens + answer_tokens + thoughts_tokens,
  }
  if thoughts_tokens:
    usage["thoughtsTokenCount"] = thoughts_tokens
  body = {
      "candidates": [
          {"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}
      ],
      "usageMetadata": usage,
  }
  return (200, body, 0.0)


def error_reply(status: int) -> tuple:
  return (
      status,
      {
          "error": {
              "code": status,
              "message": "scripted error",
              "status": "RESOURCE_EXHAUSTED" if status == 429 else "UNAVAILABLE",
          }
      },
      0.0,
  )


def slow_reply(seconds: float, text: str) -> tuple:
  status, body, _ = text_reply(text)
  return (status, body, seconds)


class FakeGemini:
  """Serves `script` replies in order (the last one repeats); records every request."""

  def __init__(self, script):
    self.script = list(script)
    self.requests = []
    fake = self

    class Handler(BaseHTTPRequestHandler):

      def do_POST(self):
        n = int(self.headers.get("content-length", 0))
        fake.requests.append(
            {
                "path": self.path,
                "headers": dict(self.headers),
                "body": json.loads(self.rfile.read(n) or b"{}"),
            }
        )
        status, body, delay = fake.script.pop(0) if len(fake.script) > 1 else fake.script[0]
        if delay:
          time.sleep(delay)
        out = json.dumps(body).encode()
        try:
          self.send_response(status)
          self.send_header("content-type", "application/json")
          self.send_header("content-length", str(len(out)))
          self.end_headers()
          self.wfile.write(out)
        except (BrokenPipeError, ConnectionResetError):
          pass

      def log_message(self, *args):
        pass

    self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    self.url = f"http://127.0.0.1:{self.server.server_port}"
    threading.Thread(target=self.server.serve_forever, daemon=True).start()

  def close(self):
    self.server.shutdown()
