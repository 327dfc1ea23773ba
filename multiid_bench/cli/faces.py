"""``mbench faces IMAGE...``: detected faces, pairwise identity similarities and an annotated picture.

How a user sees why a face was missed (``--save`` draws near-misses in orange with their score) or matched
wrongly (the similarity matrix across every face of every image, per face model).
"""
from __future__ import annotations

import json

import click

__all__ = ["faces"]

_EXAMPLES = """
\b
Examples:
  mbench faces group.jpg --profile offline --save group_faces.png
  mbench faces ref.jpg generated.png --model arcface --json
  mbench faces photo.jpg --profile paper --model adaface --detector mtcnn
"""


@click.command(epilog=_EXAMPLES, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--profile", type=click.Choice(["paper", "offline"]), default="offline", show_default=True,
              help="Face profile: paper (ArcFace/AdaFace/FaceNet as published; needs weights) or offline (MTCNN + dlib).")
@click.option("--model", default=None, help="Only this face model (e.g. arcface, adaface, facenet, dlib).")
@click.option("--detector", default=None, help="Override the detector (scrfd, scrfd-antelopev2, retinaface, mtcnn).")
@click.option("--json/--no-json", "as_json", default=False, show_default=True, help="Machine-readable output.")
@click.option("--save", "save", type=click.Path(dir_okay=False), default=None,
              help="Write an annotated PNG (kept faces green, near-misses orange).")
@click.option("--device", default="cpu", show_default=True, help="torch / onnxruntime device (cpu, cuda, cuda:1).")
@click.option("--offline/--no-offline", default=None, help="Never download (default: MBENCH_OFFLINE / HF_HUB_OFFLINE).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Cache root for weights.")
def faces(images: tuple[str, ...], profile: str, model: str | None, detector: str | None, as_json: bool,
          save: str | None, device: str, offline: bool | None, cache_dir: str | None) -> None:
    """Detect faces in IMAGE(s), embed them with each face model and show who matches whom."""
    from multiid_bench.faces.inspect import draw_annotations, inspect_images, select_entries

    entries = select_entries(profile, model, detector)
    result = inspect_images(images, entries, device=device, cache_dir=cache_dir, offline=offline,
                            show_rejected=save is not None)
    saved = str(draw_annotations(result, save)) if save else None
    if as_json:
        data = {"profile": profile, **result.to_dict(), "saved": saved}
        click.echo(json.dumps(data, indent=2))
        return
    _print_human(result, saved)


def _print_human(result, saved: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    for det, per_image in result.faces.items():
        reasons = result.no_face_reason.get(det, [None] * len(per_image))
        table = Table(title=f"faces ({det})")
        for h in ("face", "image", "score", "box (x1, y1, x2, y2)", "eye dist px"):
            table.add_column(h)
        for i, faces in enumerate(per_image):
            if not faces:
                why = f" ({reasons[i]})" if reasons[i] else ""
                table.add_row("-", result.paths[i], f"[red]no face{why}[/]", "-", "-")
            for k, f in enumerate(faces):
                table.add_row(f"{i}#{k}", result.paths[i], f"{f.score:.3f}",
                              ", ".join(f"{v:.0f}" for v in f.box), f"{f.eye_distance:.0f}")
        console.print(table)
    for e in result.entries:
        labels, sim = result.labels[e.model], result.similarity[e.model]
        if not labels:
            console.print(f"{e.model}: no faces to compare")
            continue
        table = Table(title=f"{e.model} cosine similarity ({result.cards[e.model]['cosine_scale_note']})")
        table.add_column("")
        for lab in labels:
            table.add_column(lab, justify="right")
        for lab, row in zip(labels, sim):
            table.add_row(lab, *(f"{v:.3f}" for v in row))
        console.print(table)
    if saved:
        console.print(f"annotated picture: {saved}")
