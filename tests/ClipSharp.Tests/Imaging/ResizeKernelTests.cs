using ClipSharp.Imaging;

namespace ClipSharp.Tests.Imaging;

/// <summary>
/// The three-channel horizontal pass has an AVX2 path; the one-channel pass is plain scalar code. Resizing each colour
/// plane on its own must give exactly the bytes of resizing the interleaved image, for sizes that exercise odd and even
/// kernel counts, windows clipped at both edges, and the last pixels of the buffer (where the vector path falls back).
/// </summary>
public class ResizeKernelTests
{
    [Theory]
    [InlineData(500, 375, 298, 224)]
    [InlineData(224, 224, 97, 224)]
    [InlineData(37, 11, 5, 3)]
    [InlineData(640, 480, 299, 224)]
    [InlineData(17, 9, 40, 20)]
    [InlineData(1000, 3, 224, 1)]
    public void InterleavedRgbEqualsThreeSeparatePlanes(int w, int h, int outW, int outH)
    {
        var rng = new Random(w * 7919 + outW);
        var rgb = new byte[w * h * 3];
        rng.NextBytes(rgb);
        var resized = PillowResize.ResizeBicubic(rgb, w, h, 3, outW, outH);
        for (int c = 0; c < 3; c++)
        {
            var plane = new byte[w * h];
            for (int i = 0; i < plane.Length; i++) plane[i] = rgb[3 * i + c];
            var expected = PillowResize.ResizeBicubic(plane, w, h, 1, outW, outH);
            for (int i = 0; i < expected.Length; i++)
                if (resized[3 * i + c] != expected[i])
                    Assert.Fail($"{w}×{h} → {outW}×{outH}: channel {c} of pixel {i} is {resized[3 * i + c]}, the scalar pass gives {expected[i]}");
        }
    }
}
