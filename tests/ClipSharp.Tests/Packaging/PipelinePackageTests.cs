using System.Globalization;
using ClipSharp.Hub;
using ClipSharp.Tests.Hub;
using ClipSharp.Tests.Pipeline;

namespace ClipSharp.Tests.Packaging;

/// <summary>
/// Issue 11's show case: the packed libraries (ClipSharp.Core and ClipSharp.Torch from a folder feed made by
/// <c>dotnet pack</c>) restored into a fresh console app outside the repository, which runs the README's three lines on
/// the golden vit_small served by a loopback server laid out like the Hugging Face hub and found through HF_ENDPOINT
/// (the <c>hf-hub:</c> name of that repository). It prints the reference probabilities (the softmax of the golden
/// logits), and a second run with HF_HUB_OFFLINE=1 prints the same from the cache without a request.
/// </summary>
public class PipelinePackageTests
{
    [Fact]
    public void ThreeLinesInAnAppFromThePackagesClassifyLikeTheReferenceOnlineThenOffline()
    {
        string repo = PackageApp.RepositoryRoot();
        var work = Directory.CreateTempSubdirectory("clipsharp-pipelinepkg-");
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        try
        {
            string version = PackageApp.UniqueVersion();
            string feed = Directory.CreateDirectory(Path.Combine(work.FullName, "feed")).FullName;
            PackageApp.Pack(repo, "ClipSharp.Core", feed, version);
            PackageApp.Pack(repo, "ClipSharp.Torch", feed, version);

            string app = Directory.CreateDirectory(Path.Combine(work.FullName, "app")).FullName;
            WriteApp(app, feed, version);
            string output = Path.Combine(app, "out");
            PackageApp.Dotnet(app, null, "build", "-c", "Release", "-nologo", "-o", output);

            string name = PretrainedResolver.HubPrefix + HubFixtures.OpenClipRepo;
            string image = Golden.Path("preprocess", "landscape.jpg");
            var env = new Dictionary<string, string?>
            {
                ["HF_ENDPOINT"] = hub.Endpoint,
                ["HF_HOME"] = Path.Combine(work.FullName, "hf"),
                ["XDG_CACHE_HOME"] = Path.Combine(work.FullName, "cache"),
                ["CLIPSHARP_CACHE"] = Path.Combine(work.FullName, "clipsharp"),
                ["CLIPSHARP_BPE_VOCAB"] = null,
                ["HF_HUB_CACHE"] = null, ["HUGGINGFACE_HUB_CACHE"] = null, ["HF_TOKEN"] = null, ["HUGGING_FACE_HUB_TOKEN"] = null,
                ["HF_HUB_OFFLINE"] = null,
                ["http_proxy"] = null, ["HTTP_PROXY"] = null, ["https_proxy"] = null, ["HTTPS_PROXY"] = null, ["all_proxy"] = null, ["ALL_PROXY"] = null,
            };
            string[] args = [Path.Combine(output, "pipelineapp.dll"), name, image, .. ClipPipelineTests.Captions];

            string online = PackageApp.Dotnet(output, env, args).ReplaceLineEndings("\n");
            Assert.Contains(hub.Log, r => r.Path.EndsWith("/open_clip_model.safetensors", StringComparison.Ordinal) && r.Method == "GET");
            AssertReference(online);

            int requests = hub.RequestCount;
            env["HF_HUB_OFFLINE"] = "1";
            string offline = PackageApp.Dotnet(output, env, args).ReplaceLineEndings("\n");
            Assert.Equal(requests, hub.RequestCount);
            Assert.Equal(online, offline);
        }
        finally
        {
            try { work.Delete(recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>The first line is the three lines' output (the top label and its probability); then every label with its probability.</summary>
    static void AssertReference(string printed)
    {
        var lines = printed.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var reference = ClipPipelineTests.ReferenceProbabilities();
        int top = Array.IndexOf(reference, reference.Max());
        string topLabel = ClipPipelineTests.Captions[top];
        Assert.StartsWith(topLabel + ": ", lines[0], StringComparison.Ordinal);
        Assert.True(Math.Abs(float.Parse(lines[0][(topLabel.Length + 2)..], CultureInfo.InvariantCulture) - reference[top]) <= 1e-4, lines[0]);
        var all = lines.Skip(1).Select(l => l.Split('\t')).ToList();
        Assert.Equal(ClipPipelineTests.Captions.Length, all.Count);
        foreach (var parts in all)
        {
            float expected = reference[Array.IndexOf(ClipPipelineTests.Captions, parts[0])];
            float actual = float.Parse(parts[1], CultureInfo.InvariantCulture);
            Assert.True(Math.Abs(actual - expected) <= 1e-5, $"{parts[0]}: {actual} vs reference {expected}");
        }
    }

    static void WriteApp(string dir, string feed, string version)
    {
        PackageApp.WriteNugetConfig(dir, feed);
        PackageApp.WriteProject(dir, "pipelineapp", "ClipSharp.Torch", version);
        // The README's three lines, with the name, image and labels from the command line; then every probability in full.
        File.WriteAllText(Path.Combine(dir, "Program.cs"), """
            using System.Globalization;
            using ClipSharp;

            using var clip = ClipPipeline.FromPretrained(args[0]);
            var scores = clip.Classify(args[1], args[2..]);
            Console.WriteLine(scores[0]);

            foreach (var s in scores) Console.WriteLine($"{s.Label}\t{s.Probability.ToString("R", CultureInfo.InvariantCulture)}");
            """);
    }
}
