"""The official `lorax-client` 0.6.3, unchanged, from its own virtualenv, against our root.

`lorax-client` pins `huggingface_hub<1.0`, so it lives in `.venv-lorax/` (built by
`make lorax-venv`, a prerequisite of `make test`). Each test runs a small script with that
interpreter against a live loopback server (FakeEngine behind it, so replies are known).
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import pytest

from lora_land.config import PROJECT_ROOT
from tests.server.conftest import ADAPTER

LORAX_PYTHON = PROJECT_ROOT / ".venv-lorax" / "bin" / "python"


def run_client(url: str, body: str) -> dict:
    if not LORAX_PYTHON.is_file():
        if os.environ.get("LORA_LAND_REQUIRE_LORAX"):
            pytest.fail(f"{LORAX_PYTHON} is missing: run `make lorax-venv`")
        pytest.skip(f"{LORAX_PYTHON} is missing (run `make lorax-venv`; `make test` builds it)")
    script = "import json, sys\nfrom lorax import Client\nclient = Client(sys.argv[1])\n"
    script += textwrap.dedent(body)
    done = subprocess.run(
        [str(LORAX_PYTHON), "-c", script, url], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_generate_with_details_as_lorax_users_write_it(api):
    out = run_client(
        api.url,
        f"""
        r = client.generate("Review: great", adapter_id="{ADAPTER}", max_new_tokens=8,
                            details=True)
        d = r.details
        print(json.dumps({{"text": r.generated_text, "finish": d.finish_reason.value,
            "prompt": d.prompt_tokens, "generated": d.generated_tokens,
            "logprobs": [t.logprob for t in d.tokens], "ids": [t.id for t in d.tokens]}}))
        """,
    )
    assert out == {
        "text": "1",
        "finish": "eos_token",
        "prompt": 2,
        "generated": 1,
        "logprobs": [-0.5],
        "ids": [1],
    }
    assert api.engine.requests[-1].adapter_id == ADAPTER


def test_generate_stream_yields_tokens_then_details(api):
    out = run_client(
        api.url,
        """
        events = list(client.generate_stream("Hello", max_new_tokens=16, seed=3, do_sample=True))
        last = events[-1]
        print(json.dumps({"text": "".join(e.token.text for e in events),
            "final": last.generated_text, "finish": last.details.finish_reason.value,
            "generated": last.details.generated_tokens, "seed": last.details.seed}))
        """,
    )
    assert out == {
        "text": "It is a good film",
        "final": "It is a good film",
        "finish": "eos_token",
        "generated": 5,
        "seed": 3,
    }


def test_client_errors_are_lorax_errors_with_our_message(api):
    out = run_client(
        api.url,
        """
        from lorax.errors import NotFoundError, ValidationError
        seen = {}
        try:
            client.generate("x", adapter_id="no/such")
        except NotFoundError as e:
            seen["404"] = str(e)
        try:
            client.generate("x", max_new_tokens=1000)
        except ValidationError as e:
            seen["400"] = str(e)
        print(json.dumps(seen))
        """,
    )
    assert "'no/such' is not served" in out["404"]
    assert "max_new_tokens is 1000" in out["400"]
