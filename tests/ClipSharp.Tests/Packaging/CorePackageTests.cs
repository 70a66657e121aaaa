using System.Globalization;
using ClipSharp.Imaging;
using ClipSharp.Text;

namespace ClipSharp.Tests.Packaging;

/// <summary>
/// ClipSharp.Core is the layer a backend without libtorch reuses: a console app outside the repository that restores
/// only the ClipSharp.Core package (from a folder feed made by <c>dotnet pack</c>) tokenizes and preprocesses an image,
/// gets the same ids and pixels as the library in this process, never loads TorchSharp, and has no TorchSharp or
/// libtorch file in its output folder.
/// </summary>
public class CorePackageTests
{
    const string Text = "a photo of a cat.";

    [Fact]
    public void AnAppReferencingOnlyTheCorePackageTokenizesAndPreprocessesWithoutLibtorch()
    {
        string repo = PackageApp.RepositoryRoot();
        string vocab = Golden.Path("bpe_simple_vocab_16e6.txt.gz");
        string image = Golden.Path("preprocess", "landscape.jpg");
        var work = Directory.CreateTempSubdirectory("clipsharp-corepkg-");
        try
        {
            string version = PackageApp.UniqueVersion();
            string feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            PackageApp.Pack(repo, "ClipSharp.Core", feed, version);

            string app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            WriteApp(app, feed, version);
            PackageApp.Dotnet(app, null, "build", "-c", "Release", "-nologo", "-o", Path.Combine(app, "out"));
            string output = Path.Combine(app, "out");

            var torchFiles = Directory.EnumerateFiles(output, "*", SearchOption.AllDirectories)
                .Select(f => Path.GetRelativePath(output, f))
                .Where(f => f.Contains("torch", StringComparison.OrdinalIgnoreCase) || f.Contains("YamlDotNet", StringComparison.Ordinal)
                            || f.Contains("ScottPlot", StringComparison.Ordinal) || f.Contains("HarfBuzz", StringComparison.Ordinal))
                .ToList();
            Assert.True(torchFiles.Count == 0, "the Core-only app's output holds: " + string.Join(", ", torchFiles));
            Assert.True(File.Exists(Path.Combine(output, "ClipSharp.Core.dll")));

            string printed = PackageApp.Dotnet(output, null, Path.Combine(output, "coreapp.dll"), vocab, image).Trim();

            var tok = VocabularyLocator.Load(vocab);
            int[] ids = tok.Tokenize(Text);
            float[] pixels = new ClipImagePreprocessor(224).Process(image);
            string expected = string.Join("\n",
                string.Join(",", ids),
                $"{pixels.Length} {Checksum(pixels)}",
                "torchsharp loaded: False");
            Assert.Equal(expected, printed.ReplaceLineEndings("\n"));
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Order-dependent and bit-exact: the same floats in the same order give the same text.</summary>
    static string Checksum(float[] values)
    {
        double sum = 0;
        for (int i = 0; i < values.Length; i++) sum += values[i] * (double)((i % 97) + 1);
        return sum.ToString("R", CultureInfo.InvariantCulture);
    }

    static void WriteApp(string dir, string feed, string version)
    {
        PackageApp.WriteNugetConfig(dir, feed);
        PackageApp.WriteProject(dir, "coreapp", "ClipSharp.Core", version);
        File.WriteAllText(Path.Combine(dir, "Program.cs"), $$"""
            using System.Globalization;
            using ClipSharp.Imaging;
            using ClipSharp.Text;

            var tokenizer = VocabularyLocator.Load(args[0]);
            Console.WriteLine(string.Join(",", tokenizer.Tokenize("{{Text}}")));
            float[] pixels = new ClipImagePreprocessor(224).Process(args[1]);
            double sum = 0;
            for (int i = 0; i < pixels.Length; i++) sum += pixels[i] * (double)((i % 97) + 1);
            Console.WriteLine($"{pixels.Length} {sum.ToString("R", CultureInfo.InvariantCulture)}");
            bool torch = AppDomain.CurrentDomain.GetAssemblies().Any(a => a.GetName().Name!.StartsWith("TorchSharp", StringComparison.OrdinalIgnoreCase));
            Console.WriteLine($"torchsharp loaded: {torch}");
            """);
    }
}
