using System.Globalization;
using ClipSharp.Export;
using ClipSharp.Modeling;
using ClipSharp.Tests.Modeling;
using ClipSharp.Tests.Packaging;
using Tensor = TorchSharp.torch.Tensor;

namespace ClipSharp.Tests.Export;

/// <summary>
/// ClipSharp.Onnx, the backend without libtorch: <see cref="OnnxClipEncoder"/> over an export gives the reference
/// embeddings of both golden models (1e-5 relative) and the same label probabilities as the TorchSharp pipeline;
/// a broken export folder is refused naming the file; and a console app that references only the ClipSharp.Onnx
/// package classifies with no TorchSharp or libtorch file in its output.
/// </summary>
public class OnnxBackendTests
{
    static readonly string[] Labels = ["a photo of a cat", "a diagram", "a landscape with mountains"];

    static DirectoryInfo Export(string name)
    {
        var dir = Directory.CreateTempSubdirectory("clipsharp-onnxbackend-");
        using var model = ModelParityTests.LoadGoldenModel(name);
        ClipOnnxExporter.Export(model, dir.FullName);
        return dir;
    }

    [Theory, InlineData("vit_small"), InlineData("rn_small")]
    public void TheEncoderGivesTheReferenceEmbeddingsAndThePipelinesProbabilities(string name)
    {
        var dir = Export(name);
        Dictionary<string, Tensor>? io = null;
        try
        {
            using var onnx = OnnxClipEncoder.Open(dir.FullName);
            io = GoldenTensors.Load(Golden.Path("models", name + ".io.safetensors"));
            var pixels = io["pixel_values"];
            var ids = io["input_ids"];
            var img = onnx.EncodeImages(pixels.data<float>().ToArray(), (int)pixels.shape[0]);
            var txt = onnx.EncodeTexts(ids.data<long>().ToArray(), (int)ids.shape[0]);
            OnnxRuntimeParityTests.AssertRelative(img, io["image_embeds"].data<float>().ToArray(), 1e-5, $"{name} image_embeds");
            OnnxRuntimeParityTests.AssertRelative(txt, io["text_embeds"].data<float>().ToArray(), 1e-5, $"{name} text_embeds");

            // The same image and labels through the TorchSharp pipeline and through ONNX Runtime.
            string image = Golden.Path("preprocess", "landscape.jpg");
            using var torch = new ClipPipeline(ModelParityTests.LoadGoldenModel(name));
            var expected = torch.Classify(image, Labels);
            var actual = onnx.Classify(image, Labels);
            Assert.Equal(expected.Select(p => p.Label), actual.Select(p => p.Label));
            for (int i = 0; i < Labels.Length; i++) Assert.Equal(expected[i].Probability, actual[i].Probability, 1e-5f);
            var unit = onnx.EmbedTexts(Labels);
            Assert.All(unit, r => Assert.Equal(1.0, Math.Sqrt(r.Sum(v => (double)v * v)), 5));
        }
        finally
        {
            if (io is not null) foreach (var t in io.Values) t.Dispose();
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void ABrokenExportFolderIsRefusedNamingTheFile()
    {
        var dir = Export("vit_small");
        try
        {
            var missing = Assert.Throws<ClipSharpException>(() => OnnxClipEncoder.Open(Path.Combine(dir.FullName, "nope")));
            Assert.Contains("no such folder", missing.Message);
            var file = Assert.Throws<ClipSharpException>(() => OnnxClipEncoder.Open(Path.Combine(dir.FullName, OnnxExportLayout.ConfigFile)));
            Assert.Contains("is a file", file.Message);

            string vision = Path.Combine(dir.FullName, OnnxExportLayout.VisionModelFile);
            var bytes = File.ReadAllBytes(vision);
            File.WriteAllBytes(vision, bytes[..(bytes.Length / 2)]);
            var torn = Assert.Throws<ClipSharpException>(() => OnnxClipEncoder.Open(dir.FullName));
            Assert.Contains(OnnxExportLayout.VisionModelFile, torn.Message);
            Assert.DoesNotContain("\n", torn.Message);

            File.Delete(Path.Combine(dir.FullName, OnnxExportLayout.TextModelFile));
            var gone = Assert.Throws<ClipSharpException>(() => OnnxClipEncoder.Open(dir.FullName));
            Assert.Contains(OnnxExportLayout.TextModelFile + " is missing", gone.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void AnAppReferencingOnlyTheOnnxPackageClassifiesWithoutLibtorch()
    {
        string repo = PackageApp.RepositoryRoot();
        string image = Golden.Path("preprocess", "landscape.jpg");
        var export = Export("vit_small");
        var work = Directory.CreateTempSubdirectory("clipsharp-onnxpkg-");
        try
        {
            string version = PackageApp.UniqueVersion();
            string feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            PackageApp.Pack(repo, "ClipSharp.Core", feed, version);
            PackageApp.Pack(repo, "ClipSharp.Onnx", feed, version);

            string app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            PackageApp.WriteNugetConfig(app, feed);
            PackageApp.WriteProject(app, "onnxapp", "ClipSharp.Onnx", version);
            File.WriteAllText(Path.Combine(app, "Program.cs"), """
                using System.Globalization;
                using ClipSharp;

                using var clip = OnnxClipEncoder.Open(args[0]);
                foreach (var p in clip.Classify(args[1], args[2..]))
                    Console.WriteLine($"{p.Label}\t{p.Probability.ToString("R", CultureInfo.InvariantCulture)}");
                bool torch = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name!.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
                Console.WriteLine($"torchsharp loaded: {torch}");
                """);
            string output = Path.Combine(app, "out");
            PackageApp.Dotnet(app, null, "build", "-c", "Release", "-nologo", "-o", output);

            var torchFiles = Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(output, f))
                .Where(f => f.Contains("torch", StringComparison.OrdinalIgnoreCase))
                .ToList();
            Assert.True(torchFiles.Count == 0, "the ONNX-only app's output holds: " + string.Join(", ", torchFiles));
            Assert.Contains(Directory.EnumerateFiles(output, "libonnxruntime.so*", SearchOption.AllDirectories), _ => true);

            string printed = PackageApp.Dotnet(output, null, [Path.Combine(output, "onnxapp.dll"), export.FullName, image, .. Labels]).Trim();
            using var onnx = OnnxClipEncoder.Open(export.FullName);
            string expected = string.Join("\n", onnx.Classify(image, Labels)
                .Select(p => $"{p.Label}\t{p.Probability.ToString("R", CultureInfo.InvariantCulture)}")
                .Append("torchsharp loaded: False"));
            Assert.Equal(expected, printed.ReplaceLineEndings("\n"));
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
            export.Delete(recursive: true);
        }
    }
}
