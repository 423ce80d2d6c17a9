"""Classifiers: every model maps a float batch (B, *input_shape) in [0, 1] to logits (B, classes).

``input_shape`` is (1, H, W) for images and (D,) for tabular data; the convolutional models
need images. Adding a model is one class here and one entry in ``MODELS``; the config refers
to it by its registry name (``type``) and passes the remaining keys to its constructor (a
ValueError there becomes a config error, so say which key and which values are allowed).
Models with a ``fit_preprocessing(X_train)`` method get it called on the training split
before training.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from . import quantum

# A statevector of n qubits holds 2**n complex amplitudes per sample; 20 qubits at batch 32
# in complex128 is already 0.5 GiB before autograd keeps intermediate states.
MAX_QUBITS = 20


class MLP(nn.Module):
    """Feed-forward network: flatten -> [Linear -> ReLU]* -> Linear (logits)."""

    def __init__(self, input_shape, n_classes: int, hidden: list[int] = (32,)):
        super().__init__()
        widths = [int(np.prod(input_shape)), *hidden]
        layers: list[nn.Module] = [nn.Flatten()]
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _image_shape(input_shape, model: str) -> tuple:
    """``input_shape`` as (C, H, W), or a ValueError naming ``model`` for non-image data."""
    if len(input_shape) != 3:
        raise ValueError(f"{model} needs image input (1, H, W); data set has input shape {tuple(input_shape)}")
    return tuple(input_shape)


class CNN(nn.Module):
    """Small convolutional network; ``gradcam_layer`` is its last convolution (for Grad-CAM)."""

    def __init__(self, input_shape, n_classes: int, channels: list[int] = (8, 16), hidden: int = 32):
        super().__init__()
        c_in, h, w = _image_shape(input_shape, "cnn")
        convs: list[nn.Module] = []
        for c_out in channels:
            convs += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*convs)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * (h // 2) * (w // 2), hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    @property
    def gradcam_layer(self) -> nn.Module:
        return [m for m in self.features if isinstance(m, nn.Conv2d)][-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


class PCAFeatures(nn.Module):
    """Flatten -> PCA to ``n_features`` components -> affine map onto [0, pi].

    Fitted on the training split only (``fit``) and stored as buffers, so the map is fixed
    and differentiable: gradients reach the input. The range [0, pi] is the rotation-angle
    range of the angle encodings; the capacity-matched MLP sees the same numbers.
    """

    def __init__(self, n_inputs: int, n_features: int):
        super().__init__()
        if not 1 <= n_features <= n_inputs:
            raise ValueError(f"n_features ({n_features}) must be 1..the number of input features ({n_inputs})")
        self.n_features = n_features
        self.register_buffer("mean", torch.zeros(n_inputs))
        self.register_buffer("components", torch.zeros(n_features, n_inputs))
        self.register_buffer("low", torch.zeros(n_features))
        self.register_buffer("high", torch.ones(n_features))

    def fit(self, X_train: torch.Tensor) -> None:
        """Fit the PCA and the feature range on training inputs (N, *input_shape) only."""
        flat = X_train.reshape(len(X_train), -1).double()
        mean = flat.mean(0)
        # Principal axes from the SVD of the centred data, signs fixed for reproducibility.
        _, _, vt = torch.linalg.svd(flat - mean, full_matrices=False)
        components = vt[: self.n_features]
        signs = torch.sign(components[torch.arange(self.n_features), components.abs().argmax(1)])
        components = components * signs[:, None]
        features = (flat - mean) @ components.T
        low, high = features.min(0).values, features.max(0).values
        self.mean.copy_(mean.float())
        self.components.copy_(components.float())
        self.low.copy_(low.float())
        self.high.copy_(torch.maximum(high, low + 1e-6).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (B, n_features) of inputs (B, *input_shape); the training split maps into [0, pi]."""
        features = (x.reshape(len(x), -1) - self.mean) @ self.components.T
        return math.pi * (features - self.low) / (self.high - self.low)


# Added to the first amplitude before normalising, so that an all-zero input (a black image)
# is the state |0...0> instead of a division by zero; negligible for any other input in [0, 1].
AMPLITUDE_EPSILON = 1e-8
# Floor under the probabilities of the probs readout before the logarithm.
PROBABILITY_FLOOR = 1e-10


def amplitude_state(x: torch.Tensor, n_qubits: int) -> torch.Tensor:
    """Real unit-norm amplitudes (B, 2**n_qubits), float64, of inputs (B, *input_shape) in
    [0, 1]: flattened, zero-padded to 2**n_qubits and L2-normalised (``AmplitudeEmbedding``)."""
    flat = x.reshape(len(x), -1).double()
    padded = nn.functional.pad(flat, (0, 2 ** n_qubits - flat.shape[1]))
    guarded = torch.cat([padded[:, :1] + AMPLITUDE_EPSILON, padded[:, 1:]], dim=1)
    return guarded / guarded.norm(dim=1, keepdim=True)


class VQC(nn.Module):
    """Variational quantum classifier (registry name ``vqc``).

    inputs (B, *input_shape) in [0, 1] -> ``encoding`` -> ``n_layers`` trainable layers of
    ``ansatz`` on ``n_qubits`` -> ``readout`` -> trainable output scale -> logits (B, n_classes).

    - ``encoding="angle"`` (default): PCA of the flattened input to ``n_qubits`` features
      (``PCAFeatures``, fitted on the training split only) -> rotation angles [0, pi] ->
      ``AngleEmbedding`` (X rotations). Needs n_qubits <= the number of input features.
      ``"reupload"``: the same angles, encoded again before every layer (data re-uploading).
      ``"amplitude"``: the flattened input itself, zero-padded to 2**n_qubits and
      L2-normalised inside the model (``amplitude_state``) -> ``AmplitudeEmbedding``; no PCA,
      so it needs 2**n_qubits >= the number of input features (64 pixels: 6 qubits); fewer
      qubits is an error rather than a PCA, whose signed features would need a shift fitted
      on the training range and would no longer be the pixels' amplitudes. The state ignores
      the input's overall scale (x and 2x encode alike).
    - ``ansatz="strong"`` (default): ``StronglyEntanglingLayers``, 3 weights per qubit and
      layer; ``"basic"``: ``BasicEntanglerLayers`` (RX rotations, CNOT ring), 1 weight.
    - ``readout="expval"`` (default): <Z> in [-1, 1] on the first ``n_classes`` wires (needs
      n_classes <= n_qubits), times the scale. ``"probs"``: the measurement probabilities of
      the first m = max(1, ceil(log2(n_classes))) wires; the first ``n_classes`` outcomes are
      the classes and logits = scale * log(p + 1e-10). With scale 1 the softmax is the
      circuit's own distribution conditioned on a class outcome, so cross-entropy is its
      negative log-likelihood; the logarithm keeps logits and input gradients from
      saturating (unlike scale * p).

    Every step is differentiable, so gradients reach the input and the model is attacked in
    the same input space as the classical ones.

    ``simulator`` picks the simulation of the circuit (``quantum.QuantumLayer``): ``fast``
    (default; a statevector path in training, the frozen block as one unitary in eval when
    the encoding happens once), ``pennylane`` (``qml.qnn.TorchLayer`` on ``default.qubit``,
    the reference) or ``lightning`` (``lightning.qubit``, adjoint; angle encodings with
    ``expval`` only); all give the same numbers. ``path`` says which simulation the current
    mode runs.
    """

    def __init__(self, input_shape, n_classes: int, n_qubits: int = 8, n_layers: int = 4,
                 output_scale: float = 1.0, simulator: str = "fast", encoding: str = "angle",
                 ansatz: str = "strong", readout: str = "expval"):
        super().__init__()
        quantum.check_options(simulator, encoding, ansatz, readout)
        n_inputs = int(np.prod(input_shape))
        if not 1 <= n_qubits <= MAX_QUBITS:
            raise ValueError(f"n_qubits must be in 1..{MAX_QUBITS}, got {n_qubits}")
        if readout == "expval":
            n_readout = n_classes
            if n_classes > n_qubits:
                raise ValueError(f"n_classes ({n_classes}) must not exceed n_qubits ({n_qubits}): readout 'expval' "
                                 "measures one <Z> per class; use more qubits or readout: probs")
        else:
            n_readout = max(1, math.ceil(math.log2(n_classes)))
            if n_readout > n_qubits:
                raise ValueError(f"readout 'probs' needs ceil(log2(n_classes)) = {n_readout} wires for {n_classes} "
                                 f"classes, but n_qubits is {n_qubits}")
        if encoding == "amplitude":
            if n_inputs > 2 ** n_qubits:
                raise ValueError(f"encoding 'amplitude' needs 2**n_qubits >= the number of input features ({n_inputs}): "
                                 f"n_qubits >= {math.ceil(math.log2(n_inputs))}, got {n_qubits}")
            self.pca = None
        else:
            if n_qubits > n_inputs:
                raise ValueError(f"encoding {encoding!r} puts one PCA feature on each qubit: n_qubits ({n_qubits}) "
                                 f"must not exceed the number of input features ({n_inputs})")
            self.pca = PCAFeatures(n_inputs, n_qubits)
        self.n_qubits, self.n_layers, self.n_classes = n_qubits, n_layers, n_classes
        self.encoding, self.readout = encoding, readout
        self.quantum = quantum.QuantumLayer(n_qubits, n_layers, n_readout, simulator, encoding, ansatz, readout)
        # <Z> lies in [-1, 1]: without a trainable scale the logit margins stay small.
        self.output_scale = nn.Parameter(torch.tensor(float(output_scale)))

    def fit_preprocessing(self, X_train: torch.Tensor) -> None:
        """Fit the PCA and the angle range on training inputs (N, *input_shape) only
        (amplitude encoding has nothing to fit)."""
        if self.pca is not None:
            self.pca.fit(X_train)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The circuit's inputs: angles (B, n_qubits), training inputs map into [0, pi]; or,
        for amplitude encoding, unit-norm amplitudes (B, 2**n_qubits)."""
        if self.pca is None:
            return amplitude_state(x, self.n_qubits)
        return self.pca(x)

    @property
    def path(self) -> str:
        return self.quantum.path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        readout = self.quantum(self.encode(x))
        if self.readout == "probs":
            readout = torch.log(readout[:, : self.n_classes] + PROBABILITY_FLOOR)
        return self.output_scale * readout.to(x.dtype)


def hidden_width(parameters: int, n_features: int, n_classes: int) -> int:
    """Hidden width h >= 1 whose one-hidden-layer MLP n_features -> h -> n_classes has the
    trainable parameter count closest to ``parameters``; a ValueError if not within 10%."""
    per_unit = n_features + 1 + n_classes            # weights in, bias, weights out
    width = max(1, round((parameters - n_classes) / per_unit))
    count = width * per_unit + n_classes
    if abs(count - parameters) > 0.1 * parameters:
        raise ValueError(f"no hidden width gives an MLP {n_features} -> h -> {n_classes} within 10% of "
                         f"parameters={parameters}: the closest, h={width}, has {count}")
    return width


class MatchedMLP(nn.Module):
    """Capacity-matched classical baseline (registry name ``matched_mlp``).

    The VQC's reduced features (``PCAFeatures``: the same training-split PCA to
    ``n_features`` components and the same map onto [0, pi]) -> ``MLP`` with one hidden
    layer whose width (``hidden_width``) puts its trainable parameter count within 10% of
    ``parameters``. The defaults match the default ``vqc`` (8 qubits, 4 layers: 97
    parameters); ``match: <model name>`` in a config sets both (``match_capacity``).
    """

    def __init__(self, input_shape, n_classes: int, parameters: int = 97, n_features: int = 8):
        super().__init__()
        self.pca = PCAFeatures(int(np.prod(input_shape)), n_features)
        self.mlp = MLP((n_features,), n_classes, hidden=(hidden_width(parameters, n_features, n_classes),))

    def fit_preprocessing(self, X_train: torch.Tensor) -> None:
        """Fit the PCA and the feature range on training inputs (N, *input_shape) only."""
        self.pca.fit(X_train)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.pca(x))


def _seed_backbone() -> nn.Sequential:
    """The earlier study's convolutional backbone: Conv(1->16, 3x3) -> ReLU -> AvgPool(2) ->
    Conv(16->32, 3x3) -> ReLU -> AvgPool(2) -> flatten (128 features for 8x8 images)."""
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten())


def _backbone_width(input_shape) -> int:
    _, height, width = _image_shape(input_shape, "the seed backbone")
    if height < 4 or width < 4:
        raise ValueError(f"the seed backbone pools twice by 2: images must be at least 4x4, got {height}x{width}")
    return 32 * (height // 4) * (width // 4)


class SeedCNN(nn.Module):
    """The earlier study's classical CNN (``configs/seed.yaml``): the seed backbone ->
    Linear 128->16 -> ReLU -> Linear 16->8 -> ReLU -> Linear 8->classes (7,018 parameters for
    8x8 images and 2 classes)."""

    def __init__(self, input_shape, n_classes: int):
        super().__init__()
        self.features = _seed_backbone()
        self.head = nn.Sequential(nn.Linear(_backbone_width(input_shape), 16), nn.ReLU(),
                                  nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, n_classes))

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SeedHybrid(nn.Module):
    """The earlier study's hybrid model (``configs/seed.yaml``) and its quantum-free control.

    Its own seed backbone -> Linear 128->``n_qubits`` -> tanh -> ``head`` -> Linear
    ``n_readout``->classes. ``head="quantum"``: the tanh outputs are the angles of
    ``AngleEmbedding`` (X rotations) -> ``StronglyEntanglingLayers`` (``n_layers``) -> <Z> on
    the first ``n_readout`` wires (``quantum.QuantumLayer``; 4 qubits, 2 layers: 24 quantum
    weights). ``head="classical"``: the circuit replaced by Linear ``n_qubits``->``n_readout``
    and tanh, the same width and the same bounded output range, so that the effect of the
    bottleneck separates from the effect of the circuit.
    """

    HEADS = ("quantum", "classical")

    def __init__(self, input_shape, n_classes: int, head: str = "quantum", n_qubits: int = 4, n_layers: int = 2,
                 n_readout: int = 2, simulator: str = "fast"):
        super().__init__()
        if head not in self.HEADS:
            raise ValueError(f"head must be one of {self.HEADS}, got {head!r}")
        self.features = _seed_backbone()
        self.bottleneck = nn.Linear(_backbone_width(input_shape), n_qubits)
        if head == "quantum":
            self.quantum = quantum.QuantumLayer(n_qubits, n_layers, n_readout, simulator)
        else:
            if not 1 <= n_readout <= n_qubits:
                raise ValueError(f"n_readout ({n_readout}) must be 1..n_qubits ({n_qubits})")
            self.classical = nn.Linear(n_qubits, n_readout)
        self.output = nn.Linear(n_readout, n_classes)

    @property
    def gradcam_layer(self) -> nn.Module:
        return self.features[3]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = torch.tanh(self.bottleneck(self.features(x)))
        if hasattr(self, "quantum"):
            readout = self.quantum(angles).to(x.dtype)
        else:
            readout = torch.tanh(self.classical(angles))
        return self.output(readout)


MODELS = {"mlp": MLP, "cnn": CNN, "vqc": VQC, "matched_mlp": MatchedMLP, "seed_cnn": SeedCNN,
          "seed_hybrid": SeedHybrid}


def build_model(spec: dict, input_shape, n_classes: int) -> nn.Module:
    """Build the model named by ``spec['type']`` with the other keys as constructor arguments."""
    kind = spec["type"]
    if kind not in MODELS:
        raise ValueError(f"unknown model type {kind!r}; available: {sorted(MODELS)}")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    return MODELS[kind](tuple(input_shape), n_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (buffers such as the fixed PCA are not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def match_capacity(models: dict, input_shape, n_classes: int) -> dict:
    """A copy of a config's ``models`` mapping (name -> spec) in which every spec with
    ``match: <other model name>`` instead has ``parameters`` (the other model's trainable
    parameter count) and ``n_features`` (its PCA feature count, e.g. a VQC's n_qubits).

    The other model must exist, must not itself be matched, and must have reduced features
    (a ``pca`` of type ``PCAFeatures``; amplitude encoding has none); a ValueError otherwise.
    """
    resolved = {}
    for name, spec in models.items():
        if "match" not in spec:
            resolved[name] = spec
            continue
        other = spec["match"]
        if other not in models or "match" in models[other]:
            raise ValueError(f"models.{name}.match must name a model of this config that is not matched "
                             f"itself; got {other!r}, available: {sorted(n for n in models if 'match' not in models[n])}")
        given = sorted(set(spec) & {"parameters", "n_features"})
        if given:
            raise ValueError(f"models.{name}: match sets parameters and n_features; remove {given}")
        reference = build_model(models[other], input_shape, n_classes)
        if not isinstance(getattr(reference, "pca", None), PCAFeatures):
            raise ValueError(f"models.{name}.match: model {other!r} has no reduced features (a PCA) to share")
        resolved[name] = {**{k: v for k, v in spec.items() if k != "match"},
                          "parameters": count_parameters(reference), "n_features": reference.pca.n_features}
    return resolved
