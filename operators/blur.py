"""Spatially invariant blur (2-D convolution applied to each channel) with exact adjoints.

Convolution, not correlation
----------------------------
``Blur(k)`` computes the *true* convolution, with the kernel centre at ``(c_h, c_w) =
(h // 2, w // 2)``::

    (A x)[i, j] = sum_{p, q} k[p, q] * x_ext[i + c_h - p, j + c_w - q]

where ``x_ext`` is ``x`` extended beyond its borders by the boundary rule. This is exactly
``scipy.ndimage.convolve(x, k, mode=...)`` (including the centre of even-sized kernels) and
deepinv's ``Blur`` / ``BlurFFT``.

Boundary rules (and their names elsewhere)
------------------------------------------
=============  ==========================================  ==================  ==============
``boundary``   extension of ``x = (a b c d)``              scipy.ndimage mode  torch / numpy
=============  ==========================================  ==================  ==============
"circular"     ``... c d | a b c d | a b ...`` (periodic)   "wrap"              "circular"/"wrap"
"reflect"      ``... b a | a b c d | d c ...`` half-sample  "reflect"           numpy "symmetric"
"mirror"       ``... c b | a b c d | c b ...`` whole-sample "mirror"            "reflect"
"replicate"    ``... a a | a b c d | d d ...``              "nearest"           "replicate"/"edge"
"zero"         ``... 0 0 | a b c d | 0 0 ...``              "constant" (cval=0) "constant"
=============  ==========================================  ==================  ==============

``"reflect"`` is the half-sample symmetric extension (the edge pixel is repeated), the
"reflexive" boundary condition of Ng, Chan & Tang (SIAM J. Sci. Comput. 1999) under which a
symmetric blur is diagonalised by the DCT. Beware: torch's ``"reflect"`` (and deepinv's) is our
``"mirror"``.

Implementation: ``"circular"`` is computed by FFT (kernel spectrum cached per image size: the
fast path, with closed-form norm and normal equations). The other rules pad the image (index
gathering) and apply a "valid" convolution -- a direct convolution for small kernels, an FFT on
the padded grid for kernels with more than 49 entries (same operator, faster). The adjoint is the
transposed convolution followed by the adjoint of the padding, which *accumulates* each padded
pixel back into the source pixel it copies (``index_add``), so adjoints are exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import LinearOperator, Shape
from .kernels import check_kernel_fits, validate_kernel

__all__ = ["Blur", "BOUNDARIES"]

BOUNDARIES = ("circular", "reflect", "mirror", "replicate", "zero")


def _fft_size(n: int) -> int:
    """Smallest integer >= n whose prime factors are 2, 3, 5, 7 (fast FFT lengths)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5, 7):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


# Kernels with more entries than this are applied by FFT on the padded grid rather than by a
# direct convolution (measured crossover on a CPU is around 7x7 to 9x9).
_FFT_MIN_AREA = 50


def _source_index(n: int, before: int, after: int, boundary: str, device) -> Tensor:
    """Source index in ``[0, n)`` of each position of a length-``n`` axis padded by ``before``/``after``."""
    p = torch.arange(-before, n + after, device=device)
    if boundary == "replicate":
        return p.clamp(0, n - 1)
    if boundary == "circular":
        return torch.remainder(p, n)
    if boundary == "reflect":  # half-sample symmetric, period 2n
        q = torch.remainder(p, 2 * n)
        return torch.where(q < n, q, 2 * n - 1 - q)
    if boundary == "mirror":  # whole-sample symmetric, period 2n - 2
        if n == 1:
            return torch.zeros_like(p)
        q = torch.remainder(p, 2 * n - 2)
        return torch.where(q < n, q, 2 * n - 2 - q)
    raise AssertionError(boundary)


class Blur(LinearOperator):
    """Spatially invariant blur ``y = k * x`` (true convolution, each channel separately).

    Parameters
    ----------
    kernel : Tensor or ndarray
        2-D kernel ``(h, w)``; validated by :func:`~operators.kernels.validate_kernel`
        (nonnegative, finite; normalised to sum 1 with a warning if needed).
    boundary : {"circular", "reflect", "mirror", "replicate", "zero"}
        Boundary rule (see the module docstring: ``"reflect"`` is half-sample symmetric,
        scipy's ``"reflect"``; ``"mirror"`` is torch's ``"reflect"``).
    in_shape : tuple of int, optional
        Fixed ``(B, C, H, W)`` input shape. Blur works for any image at least as large as the
        kernel; a kernel larger than the image raises ``ValueError``.

    Attributes
    ----------
    kernel : Tensor
        The validated float64 kernel.
    boundary : str
        The boundary rule.

    Examples
    --------
    >>> import torch
    >>> from operators import Blur, gaussian
    >>> A = Blur(gaussian(1.5), boundary="reflect")
    >>> x = torch.rand(2, 3, 32, 32)
    >>> A(x).shape
    torch.Size([2, 3, 32, 32])
    >>> A.adjoint_test((1, 1, 20, 24)) < 1e-12
    True
    """

    shape_preserving = True
    verified_by_tests = True  # every boundary: tests/test_hypotheses.py, tests/test_operators.py

    def __init__(self, kernel, *, boundary: str = "circular", in_shape: Shape | None = None) -> None:
        if boundary not in BOUNDARIES:
            raise ValueError(f"boundary must be one of {BOUNDARIES}, got {boundary!r}")
        super().__init__(in_shape=in_shape, out_shape=in_shape)
        self.kernel = validate_kernel(kernel, None if in_shape is None else in_shape)
        self.boundary = boundary
        circular = boundary == "circular"
        self.has_closed_form_normal = circular
        self.has_closed_form_normal_adjoint = circular
        kh, kw = self.kernel.shape
        ch, cw = kh // 2, kw // 2
        # padding (top, bottom, left, right) that makes the "valid" correlation with the flipped
        # kernel equal the centred convolution
        self._pad = (kh - 1 - ch, ch, kw - 1 - cw, cw)
        self._use_fft = kh * kw >= _FFT_MIN_AREA
        self._weights: dict = {}
        self._spectra: dict = {}
        self._padded_spectra: dict = {}
        self._indices: dict = {}

    # ----------------------------------------------------------------- helpers
    def _check(self, x: Tensor) -> None:
        if x.dim() != 4:
            raise ValueError(f"Blur expects a (B, C, H, W) tensor, got shape {tuple(x.shape)}")
        check_kernel_fits(self.kernel.shape, x.shape)

    def _weight(self, dtype, device, flipped: bool = True) -> Tensor:
        """The kernel as a conv2d weight: flipped for the forward correlation, as is for the adjoint."""
        key = (dtype, device, flipped)
        if key not in self._weights:
            w = torch.flip(self.kernel, dims=(0, 1)) if flipped else self.kernel
            self._weights[key] = w.to(device=device, dtype=dtype)[None, None].contiguous()
        return self._weights[key]

    @staticmethod
    def _spectra_of(kernel: Tensor, H: int, W: int, roll: bool, dtype, device) -> tuple[Tensor, Tensor, Tensor]:
        """(K^, conj K^, |K^|^2) of the kernel zero-padded to H x W (centre rolled to (0, 0) if roll)."""
        kh, kw = kernel.shape
        big = torch.zeros(H, W, dtype=torch.float64)
        big[:kh, :kw] = kernel
        if roll:
            big = torch.roll(big, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
        spec = torch.fft.rfft2(big)
        real = torch.float64 if dtype == torch.float64 else torch.float32
        cplx = torch.complex128 if real == torch.float64 else torch.complex64
        return (
            spec.to(device=device, dtype=cplx),
            spec.conj().to(device=device, dtype=cplx),
            (spec.real**2 + spec.imag**2).to(device=device, dtype=real),
        )

    def _spectrum(self, H: int, W: int, dtype, device) -> tuple[Tensor, Tensor, Tensor]:
        """Circular case: spectra of the centred kernel on the H x W grid; cached."""
        key = (H, W, dtype, device)
        if key not in self._spectra:
            self._spectra[key] = self._spectra_of(self.kernel, H, W, True, dtype, device)
        return self._spectra[key]

    def _padded_spectrum(self, H: int, W: int, dtype, device) -> tuple[tuple[int, int], Tensor, Tensor]:
        """Padded FFT path: (FFT grid, K^, conj K^) on a fast size >= the padded image; cached."""
        key = (H, W, dtype, device)
        if key not in self._padded_spectra:
            kh, kw = self.kernel.shape
            grid = (_fft_size(H + kh - 1), _fft_size(W + kw - 1))
            spec, conj, _ = self._spectra_of(self.kernel, *grid, False, dtype, device)
            self._padded_spectra[key] = (grid, spec, conj)
        return self._padded_spectra[key]

    def _index(self, H: int, W: int, device) -> tuple[Tensor, Tensor]:
        key = (H, W, device)
        if key not in self._indices:
            t, b, l, r = self._pad
            self._indices[key] = (
                _source_index(H, t, b, self.boundary, device),
                _source_index(W, l, r, self.boundary, device),
            )
        return self._indices[key]

    def _pad_forward(self, x: Tensor) -> Tensor:
        t, b, l, r = self._pad
        if self.boundary == "zero":
            return F.pad(x, (l, r, t, b))
        ir, ic = self._index(x.shape[-2], x.shape[-1], x.device)
        return x.index_select(-2, ir).index_select(-1, ic)

    def _pad_adjoint(self, z: Tensor, H: int, W: int) -> Tensor:
        t, b, l, r = self._pad
        if self.boundary == "zero":
            return z[..., t : t + H, l : l + W]
        ir, ic = self._index(H, W, z.device)
        out = z.new_zeros(*z.shape[:-1], W).index_add_(-1, ic, z)
        return out.new_zeros(*z.shape[:-2], H, W).index_add_(-2, ir, out)

    # ------------------------------------------------------------------ applying
    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        B, C, H, W = x.shape
        if self.boundary == "circular":
            spec = self._spectrum(H, W, x.dtype, x.device)[0]
            return torch.fft.irfft2(torch.fft.rfft2(x) * spec, s=(H, W))
        xp = self._pad_forward(x.reshape(B * C, 1, H, W))
        if self._use_fft:
            kh, kw = self.kernel.shape
            grid, spec, _ = self._padded_spectrum(H, W, x.dtype, x.device)
            full = torch.fft.irfft2(torch.fft.rfft2(xp, s=grid) * spec, s=grid)
            return full[..., kh - 1 : kh - 1 + H, kw - 1 : kw - 1 + W].reshape(B, C, H, W)
        return F.conv2d(xp, self._weight(x.dtype, x.device)).reshape(B, C, H, W)

    def adjoint(self, y: Tensor) -> Tensor:
        self._check(y)
        B, C, H, W = y.shape
        if self.boundary == "circular":
            conj = self._spectrum(H, W, y.dtype, y.device)[1]
            return torch.fft.irfft2(torch.fft.rfft2(y) * conj, s=(H, W))
        kh, kw = self.kernel.shape
        y = y.reshape(B * C, 1, H, W)
        if self._use_fft:
            grid, _, conj = self._padded_spectrum(H, W, y.dtype, y.device)
            emb = y.new_zeros(B * C, 1, *grid)
            emb[..., kh - 1 : kh - 1 + H, kw - 1 : kw - 1 + W] = y
            z = torch.fft.irfft2(torch.fft.rfft2(emb) * conj, s=grid)[..., : H + kh - 1, : W + kw - 1]
        else:
            # transposed "valid" correlation = "full" correlation with the unflipped kernel
            # (much faster on CPU than conv_transpose2d)
            yp = F.pad(y, (kw - 1, kw - 1, kh - 1, kh - 1))
            z = F.conv2d(yp, self._weight(y.dtype, y.device, flipped=False))
        return self._pad_adjoint(z, H, W).reshape(B, C, H, W)

    def _gram_forward(self, x: Tensor) -> Tensor:
        if self.boundary != "circular":
            return self.adjoint(self.forward(x))
        self._check(x)
        H, W = x.shape[-2:]
        abs2 = self._spectrum(H, W, x.dtype, x.device)[2]
        return torch.fft.irfft2(torch.fft.rfft2(x) * abs2, s=(H, W))

    # --------------------------------------------------------------- closed forms
    def _exact_norm(self, shape, dtype):
        if self.boundary != "circular" or shape is None:
            return None
        check_kernel_fits(self.kernel.shape, shape)
        abs2 = self._spectrum(shape[-2], shape[-1], torch.float64, torch.device("cpu"))[2]
        return float(abs2.max().sqrt())

    def _closed_normal(self, b: Tensor, rho: float) -> Tensor | None:
        if self.boundary != "circular":
            return None
        self._check(b)
        H, W = b.shape[-2:]
        abs2 = self._spectrum(H, W, b.dtype, b.device)[2]
        return torch.fft.irfft2(torch.fft.rfft2(b) / (abs2 + rho), s=(H, W))

    # circulant matrices are normal: A A^T = A^T A
    _closed_normal_adjoint = _closed_normal

    def __repr__(self) -> str:
        kh, kw = self.kernel.shape
        return f"Blur({kh}x{kw} kernel, boundary={self.boundary!r})"
