using ClipSharp.Export;
using ClipSharp.Modeling;
using ClipSharp.Tests.Modeling;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using Tensor = TorchSharp.torch.Tensor;

namespace ClipSharp.Tests.Export;

/// <summary>
/// The numbers of the exported graphs, run by ONNX Runtime, against the reference's own outputs for both golden
/// models: embeddings relative error ≤ 1e-5 and logits (from those embeddings and the exported logit scale) absolute
/// error ≤ 1e-3, the tolerances of the TorchSharp parity tests. The whole golden batch and each row alone go through
/// the dynamic batch axis, so the end-of-text pooling is checked per row.
/// </summary>
public class OnnxRuntimeParityTests
{
    [Theory, InlineData("vit_small"), InlineData("rn_small")]
    public void ExportedGraphsGiveTheReferenceEmbeddings(string name)
    {
        var dir = Directory.CreateTempSubdirectory("clipsharp-ort-");
        Dictionary<string, Tensor>? io = null;
        try
        {
            using (var model = ModelParityTests.LoadGoldenModel(name)) ClipOnnxExporter.Export(model, dir.FullName);
            var manifest = OnnxExportLayout.FromJson(File.ReadAllText(Path.Combine(dir.FullName, OnnxExportLayout.ManifestFile)), "manifest");
            io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));

            var pixels = io["pixel_values"];
            var ids = io["input_ids"];
            int n = (int)pixels.shape[0], m = (int)ids.shape[0];
            using var vision = new InferenceSession(Path.Combine(dir.FullName, OnnxExportLayout.VisionModelFile));
            using var text = new InferenceSession(Path.Combine(dir.FullName, OnnxExportLayout.TextModelFile));

            float[] img = Run(vision, "pixel_values", pixels.data<float>().ToArray(), pixels.shape, "image_embeds");
            float[] txt = Run(text, "input_ids", ids.data<long>().ToArray(), ids.shape, "text_embeds");
            AssertRelative(img, io["image_embeds"].data<float>().ToArray(), 1e-5, $"{name} image_embeds");
            AssertRelative(txt, io["text_embeds"].data<float>().ToArray(), 1e-5, $"{name} text_embeds");

            // Each row alone through the dynamic batch axis gives that row of the batch result.
            int d = img.Length / n;
            long[] one = [1, .. pixels.shape[1..]];
            int per = (int)(pixels.numel() / n);
            var allPixels = pixels.data<float>().ToArray();
            for (int i = 0; i < n; i++)
                AssertRelative(Run(vision, "pixel_values", allPixels.AsSpan(i * per, per).ToArray(), one, "image_embeds"),
                    io["image_embeds"][i].data<float>().ToArray(), 1e-5, $"{name} image row {i} alone");
            var allIds = ids.data<long>().ToArray();
            int ctx = (int)ids.shape[1];
            for (int i = 0; i < m; i++)
                AssertRelative(Run(text, "input_ids", allIds.AsSpan(i * ctx, ctx).ToArray(), [1, ctx], "text_embeds"),
                    io["text_embeds"][i].data<float>().ToArray(), 1e-5, $"{name} text row {i} alone");

            // Logits from the ONNX embeddings and the exported temperature.
            float scale = MathF.Exp(manifest.LogitScaleLog);
            var expected = io["logits_per_image"].data<float>().ToArray();
            double worst = 0;
            for (int i = 0; i < n; i++)
                for (int j = 0; j < m; j++)
                {
                    double dot = 0, ni = 0, nj = 0;
                    for (int k = 0; k < d; k++) { dot += img[i * d + k] * txt[j * d + k]; ni += img[i * d + k] * img[i * d + k]; nj += txt[j * d + k] * txt[j * d + k]; }
                    worst = Math.Max(worst, Math.Abs(scale * dot / Math.Sqrt(ni * nj) - expected[i * m + j]));
                }
            Assert.True(worst <= 1e-3, $"{name} logits_per_image: max abs error {worst:E2} > 1e-3");
        }
        finally
        {
            if (io is not null) foreach (var t in io.Values) t.Dispose();
            dir.Delete(recursive: true);
        }
    }

    static float[] Run<T>(InferenceSession session, string input, T[] data, long[] shape, string output)
    {
        var tensor = new DenseTensor<T>(data, shape.Select(s => (int)s).ToArray());
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(input, tensor)], [output]);
        return results.Single().AsTensor<float>().ToArray();
    }

    internal static void AssertRelative(float[] actual, float[] expected, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double maxErr = 0, maxRef = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            maxErr = Math.Max(maxErr, Math.Abs(actual[i] - expected[i]));
            maxRef = Math.Max(maxRef, Math.Abs(expected[i]));
        }
        Assert.True(maxErr <= tolerance * maxRef, $"{what}: relative error {maxErr / maxRef:E2} > {tolerance:E0}");
    }
}
