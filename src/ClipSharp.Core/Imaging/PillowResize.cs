using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using System.Runtime.CompilerServices;

namespace ClipSharp.Imaging;

/// <summary>
/// Image resampling that reproduces Pillow 9.4's <c>Image.resize</c> bit for bit on 8-bit images:
/// separable fixed-point bicubic convolution (horizontal pass, rounding to uint8, then vertical pass)
/// and nearest neighbour for palette and bilevel images, with alpha premultiplied around the resampling.
/// </summary>
internal static class PillowResize
{
    /// <summary>Fractional bits of the fixed-point weights (Pillow: 32 - 8 - 2).</summary>
    const int PrecisionBits = 22;

    /// <summary>Keys' cubic support radius at scale 1.</summary>
    const double BicubicSupport = 2.0;

    /// <summary>Work (output samples) above which a pass is split across threads.</summary>
    const long ParallelThreshold = 1 << 20;

    /// <summary>
    /// Resizes an image as Pillow's <c>Image.resize(size, BICUBIC)</c> would: palette and bilevel images
    /// fall back to nearest neighbour; RGBA and LA are premultiplied before and un-premultiplied after
    /// bicubic resampling with Pillow's integer rounding; other modes resample every channel.
    /// The result keeps the input's mode. If the size is unchanged the input is returned as is.
    /// </summary>
    /// <param name="image">The source image.</param>
    /// <param name="width">Output width, at least 1.</param>
    /// <param name="height">Output height, at least 1.</param>
    /// <returns>The resized image.</returns>
    public static DecodedImage Resize(DecodedImage image, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        if (width == image.Width && height == image.Height)
            return image;
        int ch = image.Channels;
        byte[] result;
        if (image.Mode.ForcesNearest())
        {
            result = ResizeNearest(image.Pixels, image.Width, image.Height, ch, width, height);
        }
        else if (image.Mode is ImageMode.Rgba or ImageMode.La)
        {
            var premultiplied = Premultiply(image.Pixels, ch);
            result = ResizeBicubic(premultiplied, image.Width, image.Height, ch, width, height);
            Unpremultiply(result, ch);
        }
        else
        {
            result = ResizeBicubic(image.Pixels, image.Width, image.Height, ch, width, height);
        }
        return new DecodedImage(width, height, image.Mode, result, takeOwnership: true);
    }

    /// <summary>
    /// Pillow's 8-bit bicubic resampling of interleaved channels, treating every channel independently
    /// (no alpha handling). A pass whose dimension is unchanged is skipped, as in Pillow.
    /// </summary>
    /// <param name="source">Row-major interleaved pixels, width × height × channels bytes.</param>
    /// <param name="width">Source width.</param>
    /// <param name="height">Source height.</param>
    /// <param name="channels">Interleaved channels per pixel, 1 to 4.</param>
    /// <param name="outWidth">Output width.</param>
    /// <param name="outHeight">Output height.</param>
    /// <returns>The resized pixels, outWidth × outHeight × channels bytes.</returns>
    public static byte[] ResizeBicubic(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        CheckArguments(source, width, height, channels, outWidth, outHeight);
        bool needH = outWidth != width;
        bool needV = outHeight != height;
        var horiz = Coefficients.Compute(width, outWidth);
        var vert = Coefficients.Compute(height, outHeight);

        if (!needH && !needV)
            return source.ToArray();

        if (!needV)
        {
            var outH = new byte[outWidth * outHeight * channels];
            HorizontalPass(source, width, channels, horiz, 0, height, outH);
            return outH;
        }

        ReadOnlySpan<byte> vin;
        int vinRowOffset;
        byte[]? temp = null;
        if (needH)
        {
            // Only the source rows the vertical kernels touch need the horizontal pass.
            int first = vert.Bounds[0];
            int last = vert.Bounds[2 * (outHeight - 1)] + vert.Bounds[2 * (outHeight - 1) + 1];
            temp = new byte[outWidth * (last - first) * channels];
            HorizontalPass(source, width, channels, horiz, first, last - first, temp);
            vin = temp;
            vinRowOffset = first;
        }
        else
        {
            vin = source;
            vinRowOffset = 0;
        }
        var output = new byte[outWidth * outHeight * channels];
        VerticalPass(vin, vinRowOffset, outWidth, channels, vert, output);
        return output;
    }

    /// <summary>
    /// Pillow's nearest-neighbour resize (the affine scale path): output pixel i samples source
    /// index floor(offset), where the offset starts at scale/2 and is advanced by adding the scale
    /// once per pixel in double precision, exactly as Pillow accumulates it.
    /// </summary>
    /// <param name="source">Row-major interleaved pixels.</param>
    /// <param name="width">Source width.</param>
    /// <param name="height">Source height.</param>
    /// <param name="channels">Interleaved channels per pixel, 1 to 4.</param>
    /// <param name="outWidth">Output width.</param>
    /// <param name="outHeight">Output height.</param>
    /// <returns>The resized pixels.</returns>
    public static byte[] ResizeNearest(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        CheckArguments(source, width, height, channels, outWidth, outHeight);
        var xs = NearestIndices(width, outWidth);
        var ys = NearestIndices(height, outHeight);
        var output = new byte[outWidth * outHeight * channels];
        int inStride = width * channels, outStride = outWidth * channels;
        for (int y = 0; y < outHeight; y++)
        {
            var srcRow = source.Slice(ys[y] * inStride, inStride);
            var dstRow = output.AsSpan(y * outStride, outStride);
            for (int x = 0; x < outWidth; x++)
            {
                int s = xs[x] * channels, d = x * channels;
                for (int c = 0; c < channels; c++)
                    dstRow[d + c] = srcRow[s + c];
            }
        }
        return output;
    }

    /// <summary>The source index each output position samples in <see cref="ResizeNearest"/>.</summary>
    /// <param name="inSize">Source length.</param>
    /// <param name="outSize">Output length.</param>
    /// <returns>One source index per output position.</returns>
    public static int[] NearestIndices(int inSize, int outSize)
    {
        double step = (double)inSize / outSize;
        double pos = step * 0.5;
        var idx = new int[outSize];
        for (int i = 0; i < outSize; i++)
        {
            int v = pos < 0.0 ? -1 : (int)pos;
            // Pillow leaves out-of-range samples untouched (zero); with box = full image they cannot occur,
            // but clamp defensively rather than read out of bounds.
            idx[i] = Math.Clamp(v, 0, inSize - 1);
            pos += step;
        }
        return idx;
    }

    /// <summary>
    /// Pillow's RGBA→RGBa (and LA→La) conversion: colour = (c·a + 128 + ((c·a + 128) &gt;&gt; 8)) &gt;&gt; 8.
    /// </summary>
    /// <param name="pixels">Interleaved pixels with alpha last (2 or 4 channels).</param>
    /// <param name="channels">2 or 4.</param>
    /// <returns>A premultiplied copy.</returns>
    public static byte[] Premultiply(ReadOnlySpan<byte> pixels, int channels)
    {
        if (channels is not (2 or 4)) throw new ArgumentOutOfRangeException(nameof(channels));
        var o = new byte[pixels.Length];
        for (int i = 0; i < pixels.Length; i += channels)
        {
            uint a = pixels[i + channels - 1];
            for (int c = 0; c < channels - 1; c++)
            {
                uint t = pixels[i + c] * a + 128;
                o[i + c] = (byte)(((t >> 8) + t) >> 8);
            }
            o[i + channels - 1] = (byte)a;
        }
        return o;
    }

    /// <summary>
    /// Pillow's RGBa→RGBA (and La→LA) conversion in place: pixels with alpha 0 or 255 are kept,
    /// others become min(255, floor(255·c / a)).
    /// </summary>
    /// <param name="pixels">Interleaved premultiplied pixels with alpha last.</param>
    /// <param name="channels">2 or 4.</param>
    public static void Unpremultiply(Span<byte> pixels, int channels)
    {
        if (channels is not (2 or 4)) throw new ArgumentOutOfRangeException(nameof(channels));
        for (int i = 0; i < pixels.Length; i += channels)
        {
            int a = pixels[i + channels - 1];
            if (a == 0 || a == 255) continue;
            for (int c = 0; c < channels - 1; c++)
                pixels[i + c] = (byte)Math.Min(255, 255 * pixels[i + c] / a);
        }
    }

    static void CheckArguments(ReadOnlySpan<byte> source, int width, int height, int channels, int outWidth, int outHeight)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(outHeight);
        if (channels is < 1 or > 4) throw new ArgumentOutOfRangeException(nameof(channels), channels, "1 to 4 channels are supported.");
        if (source.Length != (long)width * height * channels)
            throw new ArgumentException($"Expected {(long)width * height * channels} bytes for {width}x{height}x{channels}, got {source.Length}.", nameof(source));
    }

    /// <summary>Keys' cubic convolution kernel with a = -0.5.</summary>
    static double Cubic(double x)
    {
        const double a = -0.5;
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
        if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
        return 0.0;
    }

    /// <summary>Per-output-position source window and fixed-point weights for one axis.</summary>
    sealed class Coefficients
    {
        /// <summary>Pairs (first source index, count) per output position.</summary>
        public required int[] Bounds { get; init; }

        /// <summary>KernelSize weights per output position, zero beyond the count.</summary>
        public required int[] Weights { get; init; }

        public required int KernelSize { get; init; }

        /// <summary>
        /// For the AVX2 three-channel pass: per output position, the kernel weights in pairs of taps, each pair as
        /// eight ints (wⱼ four times, wⱼ₊₁ four times), (KernelSize + 1) / 2 pairs, zero beyond the count.
        /// </summary>
        public int[] PairWeights => pairWeights ??= BuildPairWeights();

        private int[]? pairWeights;

        private int[] BuildPairWeights()
        {
            int outSize = Bounds.Length / 2, pairs = (KernelSize + 1) / 2;
            var table = new int[outSize * pairs * 8];
            for (int i = 0; i < outSize; i++)
            {
                int count = Bounds[2 * i + 1];
                for (int j = 0; j < count; j++)
                {
                    int w = Weights[i * KernelSize + j];
                    int at = (i * pairs + j / 2) * 8 + (j % 2) * 4;
                    table[at] = table[at + 1] = table[at + 2] = table[at + 3] = w;
                }
            }
            return table;
        }

        public static Coefficients Compute(int inSize, int outSize)
        {
            double scale = (double)inSize / outSize;
            double filterScale = Math.Max(scale, 1.0);
            double support = BicubicSupport * filterScale;
            int ksize = (int)Math.Ceiling(support) * 2 + 1;
            var bounds = new int[outSize * 2];
            var weights = new int[outSize * ksize];
            var k = new double[ksize];
            double invFilterScale = 1.0 / filterScale;
            for (int i = 0; i < outSize; i++)
            {
                double center = (i + 0.5) * scale;
                // Window ends are rounded by adding 0.5 and truncating toward zero, then clipped.
                int lo = (int)(center - support + 0.5);
                if (lo < 0) lo = 0;
                int hi = (int)(center + support + 0.5);
                if (hi > inSize) hi = inSize;
                int count = hi - lo;
                double sum = 0.0;
                for (int j = 0; j < count; j++)
                {
                    double w = Cubic((j + lo - center + 0.5) * invFilterScale);
                    k[j] = w;
                    sum += w;
                }
                var row = weights.AsSpan(i * ksize, ksize);
                for (int j = 0; j < count; j++)
                {
                    double w = sum != 0.0 ? k[j] / sum : k[j];
                    double f = w * (1 << PrecisionBits);
                    row[j] = w < 0 ? (int)(-0.5 + f) : (int)(0.5 + f);
                }
                bounds[2 * i] = lo;
                bounds[2 * i + 1] = count;
            }
            return new Coefficients { Bounds = bounds, Weights = weights, KernelSize = ksize };
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static byte Clip8(int v)
    {
        if (v >= (1 << PrecisionBits << 8)) return 255;
        if (v <= 0) return 0;
        return (byte)(v >> PrecisionBits);
    }

    /// <summary>pshufb control: bytes 0–2 and 3–5 to lanes 0–2 and 4–6, zeros elsewhere (high bit set).</summary>
    static readonly Vector128<byte> RgbPairShuffle = Vector128.Create((byte)0, 1, 2, 0x80, 3, 4, 5, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80);

    /// <summary>Horizontal pass over source rows [firstRow, firstRow + rows) into a dense output.</summary>
    static unsafe void HorizontalPass(ReadOnlySpan<byte> source, int width, int channels, Coefficients co, int firstRow, int rows, byte[] output)
    {
        int outWidth = co.Bounds.Length / 2;
        int inStride = width * channels, outStride = outWidth * channels;
        fixed (byte* srcBase = source)
        {
            byte* src = srcBase;
            bool vector3 = channels == 3 && Avx2.IsSupported && Ssse3.IsSupported;
            var state = (Src: (nint)src, End: (nint)(srcBase + source.Length), co, firstRow, inStride, outStride, channels, outWidth, output,
                         Pairs: vector3 ? co.PairWeights : null);
            void Row(int r)
            {
                byte* inRow = (byte*)state.Src + (long)(state.firstRow + r) * state.inStride;
                var bounds = state.co.Bounds;
                var weights = state.co.Weights;
                int ks = state.co.KernelSize;
                int chn = state.channels;
                fixed (byte* outBase = state.output)
                fixed (int* wBase = weights)
                fixed (int* pairWeights = state.Pairs)
                {
                    byte* outRow = outBase + (long)r * state.outStride;
                    for (int x = 0; x < state.outWidth; x++)
                    {
                        int lo = bounds[2 * x], count = bounds[2 * x + 1];
                        int* k = wBase + x * ks;
                        byte* p = inRow + lo * chn;
                        byte* o = outRow + x * chn;
                        switch (chn)
                        {
                            case 1:
                            {
                                int s0 = 1 << (PrecisionBits - 1);
                                for (int j = 0; j < count; j++) s0 += p[j] * k[j];
                                o[0] = Clip8(s0);
                                break;
                            }
                            case 3 when vector3 && p + 3 * (count + 1) + 2 <= (byte*)state.End:
                            {
                                // Two taps per step: bytes R G B R' G' B' (+2 unused) → ints [R G B 0 R' G' B' 0],
                                // multiplied by [w w w w w' w' w' w'] and summed; the same integer products and sums as
                                // the scalar loop, so the result is bit-identical. An odd count pairs its last tap
                                // with a zero weight (the extra pixel read lies inside the buffer: checked above).
                                int pairs = (count + 1) / 2, stride = (ks + 1) / 2 * 8;
                                int* pw = pairWeights + x * stride;
                                var acc = Vector256<int>.Zero;
                                for (int j = 0; j < pairs; j++, p += 6, pw += 8)
                                {
                                    var bytes = Vector128.CreateScalarUnsafe(Unsafe.ReadUnaligned<ulong>(p)).AsByte();
                                    var wide = Avx2.ConvertToVector256Int32(Ssse3.Shuffle(bytes, RgbPairShuffle));
                                    acc = Avx2.Add(acc, Avx2.MultiplyLow(wide, Avx.LoadVector256(pw)));
                                }
                                var sum = Sse2.Add(Sse2.Add(acc.GetLower(), acc.GetUpper()), Vector128.Create(1 << (PrecisionBits - 1)));
                                var shifted = Sse2.ShiftRightArithmetic(sum, PrecisionBits);
                                var packed = Sse2.PackUnsignedSaturate(Sse2.PackSignedSaturate(shifted, shifted), Vector128<short>.Zero);
                                o[0] = packed.GetElement(0); o[1] = packed.GetElement(1); o[2] = packed.GetElement(2);
                                break;
                            }
                            case 3:
                            {
                                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0;
                                for (int j = 0; j < count; j++, p += 3)
                                {
                                    int w = k[j];
                                    s0 += p[0] * w; s1 += p[1] * w; s2 += p[2] * w;
                                }
                                o[0] = Clip8(s0); o[1] = Clip8(s1); o[2] = Clip8(s2);
                                break;
                            }
                            case 4:
                            {
                                int s0 = 1 << (PrecisionBits - 1), s1 = s0, s2 = s0, s3 = s0;
                                for (int j = 0; j < count; j++, p += 4)
                                {
                                    int w = k[j];
                                    s0 += p[0] * w; s1 += p[1] * w; s2 += p[2] * w; s3 += p[3] * w;
                                }
                                o[0] = Clip8(s0); o[1] = Clip8(s1); o[2] = Clip8(s2); o[3] = Clip8(s3);
                                break;
                            }
                            default:
                            {
                                for (int c = 0; c < chn; c++)
                                {
                                    int s = 1 << (PrecisionBits - 1);
                                    for (int j = 0; j < count; j++) s += p[j * chn + c] * k[j];
                                    o[c] = Clip8(s);
                                }
                                break;
                            }
                        }
                    }
                }
            }
            if ((long)rows * outStride * co.KernelSize > ParallelThreshold)
                Parallel.For(0, rows, Row);
            else
                for (int r = 0; r < rows; r++) Row(r);
        }
    }

    /// <summary>Vertical pass: output row y sums source rows (bounds - rowOffset) of the same column.</summary>
    static unsafe void VerticalPass(ReadOnlySpan<byte> source, int rowOffset, int width, int channels, Coefficients co, byte[] output)
    {
        int outHeight = co.Bounds.Length / 2;
        int stride = width * channels;
        fixed (byte* srcBase = source)
        {
            var state = (Src: (nint)srcBase, co, rowOffset, stride, output);
            void Row(int y)
            {
                var bounds = state.co.Bounds;
                int lo = bounds[2 * y] - state.rowOffset, count = bounds[2 * y + 1];
                int ks = state.co.KernelSize;
                int n = state.stride;
                // Integer sums are exact, so accumulating row by row gives Pillow's per-pixel sums.
                int[] acc = new int[n];
                Array.Fill(acc, 1 << (PrecisionBits - 1));
                fixed (int* a = acc)
                fixed (int* wBase = state.co.Weights)
                fixed (byte* outBase = state.output)
                {
                    int* k = wBase + y * ks;
                    for (int j = 0; j < count; j++)
                    {
                        byte* p = (byte*)state.Src + (long)(lo + j) * n;
                        int w = k[j];
                        int i = 0;
                        if (Avx2.IsSupported)
                        {
                            // Eight bytes widened to eight ints per step: the same integer products and sums, so the
                            // result is bit-identical to the scalar loop.
                            var wv = Vector256.Create(w);
                            for (; i <= n - 8; i += 8)
                                Avx.Store(a + i, Avx2.Add(Avx.LoadVector256(a + i), Avx2.MultiplyLow(Avx2.ConvertToVector256Int32(p + i), wv)));
                        }
                        for (; i < n; i++) a[i] += p[i] * w;
                    }
                    byte* o = outBase + (long)y * n;
                    for (int i = 0; i < n; i++) o[i] = Clip8(a[i]);
                }
            }
            if ((long)outHeight * stride * co.KernelSize > ParallelThreshold)
                Parallel.For(0, outHeight, Row);
            else
                for (int y = 0; y < outHeight; y++) Row(y);
        }
    }
}
