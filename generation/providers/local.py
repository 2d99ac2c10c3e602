"""The offline provider: runs the work in-process and is done when `start` returns.

It needs no keys and no network, so `make run` and the test suite have a whole pipeline.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from generation.catalog import ASPECT_SIZES
from generation.errors import ProviderError
from generation.providers import local_render
from generation.providers.base import CANCELED, SUCCEEDED, Job, OutputRef, PredictionState, Provider, StartRequest

# Reported as the model version of every local result: bump it when a renderer's output for the
# same inputs changes, so a result page says which renderer made an old picture.
LOCAL_VERSION = "2026.11"


class LocalProvider(Provider):
    """Works on bytes: the input image is read from our storage and handed over as is. No
    webhooks (the work is done when `start` returns) and nothing to cancel remotely."""

    name = "local"
    can_cancel = False

    def build_request(self, job: Job) -> StartRequest:
        payload = {"prompt": job.prompt, "negative_prompt": job.negative_prompt, **job.params}
        return StartRequest(
            model=job.entry.provider_model,
            version=job.entry.provider_version,
            input=payload,
            webhook_url=None,
            input_image=job.input_image.read() if job.input_image else None,
            seed=job.seed,
        )

    def start(self, request: StartRequest) -> PredictionState:
        model = request.model
        data = request.input
        prediction_id = "local-" + hashlib.sha256(repr((model, sorted(data.items()))).encode()).hexdigest()[:20]
        try:
            if model == "atelier/local-canvas":
                width, height = ASPECT_SIZES.get(data.get("aspect_ratio", "1:1"), ASPECT_SIZES["1:1"])
                # Variations: output i uses seed + i, so the first equals a single run with the seed.
                outputs = [
                    OutputRef(
                        content=local_render.render_text_to_image(
                            prompt=data.get("prompt", ""),
                            negative_prompt=data.get("negative_prompt", ""),
                            seed=request.seed + index,
                            width=width,
                            height=height,
                            style=data.get("style", "none"),
                        ),
                        mime_hint="image/png",
                    )
                    for index in range(max(1, min(4, int(data.get("num_outputs") or 1))))
                ]
            elif model == "atelier/local-restyle":
                self._need_image(request)
                content = local_render.edit_image(
                    image=request.input_image,
                    prompt=data.get("prompt", ""),
                    strength=float(data.get("strength", 0.6)),
                    seed=request.seed,
                )
                outputs = [OutputRef(content=content, mime_hint="image/png")]
            elif model == "atelier/local-relief":
                self._need_image(request)
                outputs = [
                    OutputRef(
                        content=local_render.image_to_glb(image=request.input_image), mime_hint="model/gltf-binary"
                    )
                ]
            else:
                raise ProviderError("This model is not available right now.", detail=f"unknown local model {model}")
        except ValueError as exc:
            # Inputs were checked at submit time; a failure here is ours, not the person's.
            raise ProviderError(
                "The offline model could not use this input.", retryable=False, detail=f"local render: {exc!r}"
            ) from exc
        return PredictionState(id=prediction_id, status=SUCCEEDED, outputs=outputs, version=LOCAL_VERSION)

    @staticmethod
    def _need_image(request: StartRequest) -> None:
        if not request.input_image:
            raise ProviderError("The input image is missing.", retryable=False, detail="local job without input")

    def fetch(self, prediction_id: str) -> PredictionState:
        # Local work finishes inside start(); a fetch only happens after a crash mid-way.
        raise ProviderError("The offline job was interrupted.", retryable=False, detail="local prediction lost")

    def cancel(self, prediction_id: str) -> None:
        return None

    def open_output(self, ref: OutputRef) -> Iterator[bytes]:
        if ref.content is None:
            raise ProviderError("The result is missing.", detail="local output without content")
        yield ref.content


__all__ = ["LocalProvider", "CANCELED"]
