using System.Text.Json.Nodes;

namespace ClipSharp.Tests.Evaluation;

/// <summary>
/// A --classnames file in an order other than the dataset's sorted labels must not change the result: labels are
/// matched to class names by name. (It once scored the demo at chance because labels and names were misaligned.)
/// </summary>
[Collection("console")]
public class ClassNameOrderTests
{
    [Fact]
    public void ZeroShotAccuracyDoesNotDependOnClassNameFileOrder()
    {
        var dir = Directory.CreateTempSubdirectory("clip-classorder-").FullName;
        string[] images = ["landscape.jpg", "portrait.png", "tiny.png", "gray.png", "rgba.png", "palette.png"];
        string[] labels = ["mountain lake", "tall tower", "small dot", "grey sky", "glass window", "painted wall"];
        File.WriteAllLines(Path.Combine(dir, "data.csv"),
            ["image,label", .. images.Select((f, i) => $"{Golden.Path("preprocess", f)},{labels[i]}")]);

        JsonNode Run(string classesFile, string tag)
        {
            var outDir = Path.Combine(dir, tag);
            string[] args = ["eval", "zeroshot", "--model", Golden.Path("models", "vit_small.safetensors"),
                "--vocab", Golden.Path("bpe_simple_vocab_16e6.txt.gz"), "--data", Path.Combine(dir, "data.csv"),
                "--classnames", classesFile, "--templates", "a photo of a {}.", "--no-cache", "--quiet", "-o", outDir];
            Assert.Equal(0, ClipSharp.Cli.Program.Main(args));
            return JsonNode.Parse(File.ReadAllText(Path.Combine(outDir, "zeroshot.json")))!["result"]!["metrics"]!;
        }

        // 1. With the class list in sorted order, read what the (random) golden model predicts for each image.
        var sorted = labels.Order(StringComparer.Ordinal).ToArray();
        File.WriteAllLines(Path.Combine(dir, "sorted.txt"), sorted);
        var predictions = Run(Path.Combine(dir, "sorted.txt"), "first")["predictions"]!.AsArray().Select(p => sorted[p!.GetValue<int>()]).ToArray();
        // 2. Label every image with its prediction and give the class list in reverse order: every label must still
        //    meet its own class name, so top-1 is exactly 1.
        File.WriteAllLines(Path.Combine(dir, "data.csv"),
            ["image,label", .. images.Select((f, i) => $"{Golden.Path("preprocess", f)},{predictions[i]}")]);
        File.WriteAllLines(Path.Combine(dir, "reversed.txt"), sorted.Reverse());
        Assert.Equal(1.0, Run(Path.Combine(dir, "reversed.txt"), "second")["top1"]!.GetValue<double>());
    }
}
