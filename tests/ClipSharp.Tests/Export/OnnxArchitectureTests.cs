using ClipSharp.Export;
using ClipSharp.Modeling;
using ClipSharp.Text;

namespace ClipSharp.Tests.Export;

/// <summary>
/// The export covers what the golden models do not: OpenCLIP-style ViTs (exact GELU, heads wider than 64, MLPs other
/// than 4×, a resolution that is not a multiple of the patch) and the ResNet at another resolution. For each, ONNX
/// Runtime on the exported graphs gives the TorchSharp model's own features (which the golden and PyTorch cross-check
/// tests tie to the reference) to 1e-5 relative, for a batch and for each row alone.
/// </summary>
public class OnnxArchitectureTests
{
    public static TheoryData<string, ClipConfig> Configs => new()
    {
        { "gelu-wide-heads", new ClipConfig(32, 50, [2], 80, 7, 77, 49408, 48, 1, 2)
            { Activation = MlpActivation.Gelu, VisionHeadsOverride = 1, VisionMlpWidthOverride = 220, TextMlpWidthOverride = 168 } },
        { "quickgelu-narrow-heads", new ClipConfig(24, 48, [1], 64, 16, 77, 49408, 32, 2, 1) { VisionHeadsOverride = 4 } },
        { "resnet-72px", new ClipConfig(32, 72, [1, 1, 1, 1], 32, null, 77, 49408, 32, 2, 1) },
    };

    static readonly string[] Captions = ["a cat", "a diagram of a neural network with two layers", "", "two red apples and a green pear on a wooden table at noon"];

    [Theory, MemberData(nameof(Configs))]
    public void OnnxRuntimeGivesTheTorchSharpFeatures(string name, ClipConfig config)
    {
        var dir = Directory.CreateTempSubdirectory("clipsharp-onnxarch-");
        try
        {
            int n = 3, size = config.ImageResolution, per = 3 * size * size;
            var rng = new Random(17);
            var pixels = new float[n * per];
            for (int i = 0; i < pixels.Length; i++) pixels[i] = (float)(rng.NextDouble() * 4 - 2);
            var ids2d = ClipTokenizer.BuiltIn.TokenizeBatch(Captions, 77, truncate: true);
            var ids = new long[Captions.Length * 77];
            for (int i = 0; i < Captions.Length; i++) for (int j = 0; j < 77; j++) ids[i * 77 + j] = ids2d[i, j];

            float[] expectedImages, expectedTexts;
            using (var model = new ClipModel(config))
            {
                model.eval();
                ClipOnnxExporter.Export(model, dir.FullName);
                using var torchEncoder = model.AsEncoder();
                expectedImages = torchEncoder.EncodeImages(pixels, n);
                expectedTexts = torchEncoder.EncodeTexts(ids, Captions.Length);
            }

            using var onnx = OnnxClipEncoder.Open(dir.FullName);
            OnnxRuntimeParityTests.AssertRelative(onnx.EncodeImages(pixels, n), expectedImages, 1e-5, $"{name} images");
            OnnxRuntimeParityTests.AssertRelative(onnx.EncodeTexts(ids, Captions.Length), expectedTexts, 1e-5, $"{name} texts");
            int d = config.EmbedDim;
            for (int i = 0; i < n; i++)
                OnnxRuntimeParityTests.AssertRelative(onnx.EncodeImages(pixels.AsSpan(i * per, per), 1), expectedImages[(i * d)..((i + 1) * d)], 1e-5, $"{name} image {i} alone");
            for (int i = 0; i < Captions.Length; i++)
                OnnxRuntimeParityTests.AssertRelative(onnx.EncodeTexts(ids.AsSpan(i * 77, 77), 1), expectedTexts[(i * d)..((i + 1) * d)], 1e-5, $"{name} text {i} alone");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
