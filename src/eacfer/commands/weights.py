"""``eacfer weights``: where to get the MS-Celeb/VGGFace2 ResNet-50 weights, ``verify FILE``, and ``import``
of EAC checkpoints trained elsewhere (``import-official`` is its official ResNet-50 case).

Nothing is downloaded: the user fetches the file once and passes ``--pretrained FILE``.
``eacfer weights verify FILE`` prints the SHA-256 and checks that the file loads (with the restricted,
numpy-only unpickler) into the Caffe-style ResNet-50 with every key present and correctly shaped.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

INFO = """\
EAC's backbone is a Caffe-style ResNet-50 pre-trained on MS-Celeb-1M and fine-tuned on VGGFace2
(file resnet50_ft_weight.pkl, a pickle of numpy arrays). eacfer never downloads it for you.

Where to get it:
  * the EAC authors' repository (github.com/zyh-uaiaaaa/Erasing-Attention-Consistency): the README links
    the exact resnet50_ft_weight.pkl used in the paper;
  * it is the "resnet50_ft" weight file of the VGGFace2 PyTorch conversion (github.com/cydonia999/VGGFace2-pytorch).

Then:
  eacfer weights verify /path/to/resnet50_ft_weight.pkl     # SHA-256 + loads safely into the right network
  eacfer train --backbone resnet50_msceleb --pretrained /path/to/resnet50_ft_weight.pkl --data ... --out ...

A model trained with the official EAC code (torch.save(model.state_dict(), "eac.pth")) becomes an eacfer model:
  eacfer weights import-official eac.pth --out model.pt
and so does any EAC-shaped checkpoint (backbone features, global average pool, one linear head):
  eacfer weights import mobilenet_v2_final.pth --backbone mobilenet_v2 --out model.pt

Compare the printed SHA-256 with the one of a copy you trust (e.g. a colleague's); eacfer ships no
reference checksum because none is published with the file.
torchvision backbones (mobilenet_v2, resnet18, resnet50) take --pretrained imagenet or a state_dict file."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "weights",
        help="where to get pretrained weights; verify a weights file; import EAC checkpoints trained elsewhere",
        description="Print where to get resnet50_ft_weight.pkl, verify a copy, or import an EAC checkpoint.",
        epilog="examples: eacfer weights verify resnet50_ft_weight.pkl\n"
               "          eacfer weights import mobilenet_v2_final.pth --backbone mobilenet_v2 --out model.pt",
    )
    p.add_argument("action", nargs="?", choices=("info", "verify", "import", "import-official"), default="info")
    p.add_argument("file", nargs="?", help="weights file to verify, or EAC checkpoint (.pth) to import")
    p.add_argument("--out", help="import: the eacfer model file to write (e.g. model.pt)")
    p.add_argument("--backbone", help="import: the backbone it was trained on: resnet50_msceleb (official EAC), "
                                      "resnet18, resnet50, mobilenet_v2 or timm:NAME")
    p.add_argument("--classes", help="import: the head's class names in order, comma-separated "
                                     "(default: RAF-DB's Surprise,Fear,Disgust,Happiness,Sadness,Anger,Neutral)")
    p.add_argument("--image-size", type=int, default=224, help="import: input size the model was trained at")
    p.add_argument("--face-size", type=int, default=100,
                   help="import: side of the face images it was trained on (RAF-DB aligned: 100; 0 = none)")
    p.add_argument("--channels", choices=("rgb", "bgr"), default="rgb",
                   help="import: bgr for a model trained on BGR input (cv2 images not converted to RGB)")
    p.set_defaults(func=run)
    return p


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_weights(path: str | Path) -> dict[str, object]:
    """SHA-256, size and parameter count of a ``resnet50_ft_weight.pkl``; raises ValueError if unusable.

    Example:
        >>> verify_weights("resnet50_ft_weight.pkl")["sha256"]  # doctest: +SKIP
    """
    from eacfer.models.resnet_caffe import CaffeResNet50, UnsafePickleError, load_msceleb_weights

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    trunk = CaffeResNet50()
    try:
        load_msceleb_weights(trunk, path)
    except UnsafePickleError as e:
        raise ValueError(str(e)) from None
    return {
        "file": str(path),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "parameters": sum(p.numel() for p in trunk.parameters()),
    }


def _import(args: argparse.Namespace) -> int:
    from eacfer.official import import_checkpoint

    if not args.file or not args.out or not args.backbone:
        raise ValueError("import needs FILE, --backbone and --out: "
                         "eacfer weights import resnet50_final.pth --backbone resnet50 --out model.pt")
    names = [c.strip() for c in args.classes.split(",")] if args.classes else None
    r = import_checkpoint(args.file, args.out, args.backbone, class_names=names, image_size=args.image_size,
                          face_size=args.face_size or None, channels=args.channels)
    print(f"wrote {args.out} ({r.backbone}, {len(r.class_names)} classes: {', '.join(r.class_names)}; "
          f"{args.image_size} px, {args.channels.upper()}) from {args.file}")
    print(f"matched: trunk as {r.layout}, head '{r.head}'; last feature map {r.feature_map[0]}×{r.feature_map[1]}")
    return 0  # warnings of the self-check went to the log (stderr)


def run(args: argparse.Namespace) -> int:
    if args.action == "info":
        print(INFO)
        return 0
    if args.action == "import-official":
        from eacfer.official import import_official_checkpoint

        if not args.file or not args.out:
            raise ValueError("import-official needs FILE and --out: eacfer weights import-official eac.pth --out model.pt")
        import_official_checkpoint(args.file, args.out, image_size=args.image_size, face_size=args.face_size or None)
        print(f"wrote {args.out} (resnet50_msceleb, RAF-DB classes, {args.image_size} px) from the official checkpoint {args.file}")
        return 0
    if args.action == "import":
        return _import(args)
    if not args.file:
        raise ValueError("verify needs a FILE: eacfer weights verify resnet50_ft_weight.pkl")
    r = verify_weights(args.file)
    print(f"{r['file']}: OK — loads into the Caffe-style ResNet-50 ({r['parameters']:,} parameters, all keys matched)")
    print(f"size   {r['bytes']:,} bytes")
    print(f"sha256 {r['sha256']}")
    return 0
