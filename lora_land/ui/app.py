"""The Gradio app: puts the tabs together. Each tab lives in its own module.

`build_demo(services)` returns the Blocks; `launch_options()` returns the theme and CSS that
Gradio 6 takes at launch/mount time. No state lives here: per-user state is `gr.State` inside
the tabs, shared collaborators come in through `services`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from lora_land.config import PROJECT_ROOT

if TYPE_CHECKING:
    from lora_land.services import Services

ASSETS = PROJECT_ROOT / "assets"
TITLE = "LoRA Land"
TAB_IDS = ("playground", "leaderboard", "compare", "arena", "serving")


def _header() -> str:
    return (
        "<div class='ll-header'>"
        "<h1>🌴 LoRA Land</h1>"
        "<p>310 task-specific LoRA fine-tunes of 10 base models, from the LoRA Land report "
        "(<a href='https://arxiv.org/abs/2405.00732' target='_blank'>arXiv 2405.00732</a>), "
        "served by our own multi-LoRA engine: one base model in memory, many adapters, "
        "requests for different adapters batched together.</p></div>"
    )


def _serving_markdown(services: Services) -> str:
    stats = services.engine.stats()
    dep = services.deployment
    adapters = services.engine.served_adapters()
    lines = [
        f"### Deployment `{dep.name}`",
        f"- Base model: **{dep.base.display_name or dep.base.name}** (`{dep.base.source}`)",
        f"- Context length: {services.engine.context_length} tokens",
        f"- Adapters served: {len(adapters)}",
        f"- Resident on the device tier: {', '.join(stats.resident) or 'none'}",
        f"- Cache hits: {stats.hits or {}}; misses: {stats.misses}; "
        f"evictions: {stats.evictions or {}}",
        f"- Bytes used: {stats.bytes_used or {}}; adapter load time: {stats.load_time_s:.3f} s",
        f"- Base model loads: {stats.base_loads}; queue depth: {stats.queue_depth}",
        "",
        '### HTTP API (same port; see the README\'s "Three ways in")',
        "- OpenAI-compatible: `GET /v1/models`, `POST /v1/completions`, "
        "`POST /v1/chat/completions` (`model` = adapter id or the base model name)",
        "- LoRAX-compatible: `POST /generate`, `POST /generate_stream`, `POST /` "
        "(the official `lorax-client`), `POST /tokenize`, `GET /info`",
        "- Gradio: `/run_comparison`, `/run_playground` and the leaderboard endpoints",
        "- `GET /health`, `GET /ready`, `GET /metrics` (Prometheus)",
    ]
    return "\n".join(lines)


def _build_serving_tab(services: Services) -> None:
    status = gr.Markdown(_serving_markdown(services))
    refresh = gr.Button("Refresh", size="sm")
    refresh.click(lambda: _serving_markdown(services), outputs=status, api_name="serving_status")


def build_demo(services: Services, limiter: Any = None) -> gr.Blocks:
    """The whole app: Playground, Leaderboard and Serving tabs (`limiter`: the per-client
    `lora_land.server.guard.RateLimiter` the API uses too, or None)."""
    from lora_land.ui.leaderboard import build_leaderboard_tab
    from lora_land.ui.playground import build_playground_tab

    with gr.Blocks(title=TITLE) as demo:
        gr.HTML(_header())
        with gr.Tabs() as tabs:
            with gr.Tab("Playground", id="playground"):
                build_playground_tab(services, limiter=limiter)
            with gr.Tab("Leaderboard", id="leaderboard"):
                build_leaderboard_tab(services)
            with gr.Tab("Compare", id="compare"):
                from lora_land.ui.compare import build_compare_tab

                build_compare_tab(services, limiter=limiter)
            with gr.Tab("Arena", id="arena"):
                from lora_land.ui.arena import build_arena_tab

                build_arena_tab(services, limiter=limiter)
            with gr.Tab("Serving", id="serving"):
                _build_serving_tab(services)
        demo.load(_tab_from_url, None, tabs, api_visibility="private")
    return demo


def _tab_from_url(request: gr.Request):
    """`?tab=compare` (a shared comparison) opens that tab."""
    tab = request.query_params.get("tab") if request is not None else None
    return gr.Tabs(selected=tab) if tab in TAB_IDS else gr.skip()


def launch_options() -> dict[str, Any]:
    """Theme and CSS (Gradio 6 takes them at launch or mount time, not in `Blocks`)."""
    css_path = ASSETS / "style.css"
    return {
        "theme": gr.themes.Soft(primary_hue="emerald", secondary_hue="teal"),
        "css": css_path.read_text() if css_path.is_file() else None,
    }
