using System.Diagnostics;
using ClipSharp.Checkpoints;
using ClipSharp.Tests.Checkpoints;
using ClipSharp.Tests.Modeling;

namespace ClipSharp.Tests.Hub;

/// <summary>
/// Pretrained names on the command line (<c>--model hf-hub:…</c>, <c>ARCH:TAG</c>) and <c>clip models list|download|info</c>,
/// against the loopback hub through <c>HF_ENDPOINT</c>, with every cache in a temporary folder.
/// </summary>
[Collection("console")]
public class ModelsCliTests
{
    /// <summary>Points the Hugging Face and ClipSharp variables at a test server and folder for the duration of a test.</summary>
    sealed class HubEnvironment : IDisposable
    {
        static readonly string[] Names = ["HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "XDG_CACHE_HOME", "CLIPSHARP_CACHE", "CLIPSHARP_BPE_VOCAB"];
        readonly Dictionary<string, string?> _saved = Names.ToDictionary(n => n, Environment.GetEnvironmentVariable);

        public HubEnvironment(LoopbackHub hub, string root, bool offline = false)
        {
            foreach (var n in Names) Environment.SetEnvironmentVariable(n, null);
            Environment.SetEnvironmentVariable("HF_ENDPOINT", hub.Endpoint);
            Environment.SetEnvironmentVariable("HF_HOME", Path.Combine(root, "hf"));
            Environment.SetEnvironmentVariable("XDG_CACHE_HOME", Path.Combine(root, "xdg"));
            Environment.SetEnvironmentVariable("CLIPSHARP_CACHE", Path.Combine(root, "clipsharp"));
            if (offline) Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        }

        public void Dispose()
        {
            foreach (var (n, v) in _saved) Environment.SetEnvironmentVariable(n, v);
        }
    }

    [Fact]
    public void EncodeAcceptsAHubNameAndFindsTheTokenizerBesideTheWeights()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        using var env = new HubEnvironment(hub, tmp.Path);
        var output = tmp.File("out.safetensors");

        var (code, _, err) = CliRunner.Run("encode", "--model", "hf-hub:" + HubFixtures.OpenClipRepo, "--texts", "a photo of a cat.", "--output", output);

        Assert.True(code == 0, err);
        Assert.True(File.Exists(Path.Combine(tmp.Path, "hf", "hub", "models--clipsharp-test--vit-small", "refs", "main")));
        var expected = GoldenTensors.Load(Golden.Path("models", "vit_small.io.safetensors"));
        using var actual = SafeTensors.Load(output);
        TensorAssert.Relative(actual["text_embeds"], expected["text_embeds"].narrow(0, 0, 1), 1e-5, "text_embeds");
        foreach (var t in expected.Values) t.Dispose();

        // The same command offline is served by the cache.
        using var offline = new HubEnvironment(hub, tmp.Path, offline: true);
        int before = hub.RequestCount;
        (code, _, err) = CliRunner.Run("encode", "--model", "hf-hub:" + HubFixtures.OpenClipRepo, "--texts", "a dog", "--output", output);
        Assert.True(code == 0, err);
        Assert.Equal(before, hub.RequestCount);
    }

    [Fact]
    public void OfflineWithoutACachedCopyIsOneClearLine()
    {
        using var hub = new LoopbackHub();
        using var tmp = new TestUtil.TempDir();
        using var env = new HubEnvironment(hub, tmp.Path, offline: true);

        var (code, _, err) = CliRunner.Run("encode", "--model", "ViT-B-32:openai", "--texts", "a cat", "--output", tmp.File("x.safetensors"));

        Assert.Equal(1, code);
        var line = Assert.Single(err.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("clip: error: ViT-B-32:openai is not cached", line);
        Assert.Contains("HF_HUB_OFFLINE is set", line);
        Assert.Equal(0, hub.RequestCount);

        (code, _, err) = CliRunner.Run("info", "ViT-B-32:nonsense");
        Assert.Equal(1, code);
        Assert.Contains("clip: error: ViT-B-32 has no pretrained tag 'nonsense'; its tags: openai, laion400m_e31", err);
    }

    [Fact]
    public void ModelsListDownloadAndInfo()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        using var env = new HubEnvironment(hub, tmp.Path);
        // ViT-B-32:openai's weights as a Python user would have them cached.
        PretrainedResolverTests.WritePythonCache(Path.Combine(tmp.Path, "hf", "hub"), "timm/vit_base_patch32_clip_224.openai", new string('e', 40),
            new() { ["open_clip_model.safetensors"] = [1, 2, 3] });

        var (code, stdout, err) = CliRunner.Run("models", "list");
        Assert.True(code == 0, err);
        var row = Assert.Single(stdout.Split('\n'), l => l.StartsWith("ViT-B-32:openai ", StringComparison.Ordinal));
        Assert.Contains("timm/vit_base_patch32_clip_224.openai", row);
        Assert.Contains("QuickGELU", row);
        Assert.EndsWith("yes (hub cache)", row.TrimEnd());
        Assert.EndsWith("-", Assert.Single(stdout.Split('\n'), l => l.StartsWith("ViT-B-32:laion2b_s34b_b79k ", StringComparison.Ordinal)).TrimEnd());
        Assert.Contains($"{ClipSharp.Hub.PretrainedModels.All.Count} entries", stdout);
        Assert.Equal(0, hub.RequestCount);

        (code, stdout, err) = CliRunner.Run("models", "download", "hf-hub:" + HubFixtures.OpenClipRepo);
        Assert.True(code == 0, err);
        string path = stdout.Trim();
        Assert.Equal(Path.Combine(tmp.Path, "clipsharp", "pretrained", "hf-hub--clipsharp-test--vit-small--main", "open_clip_model.safetensors"), path);
        Assert.Contains("clipsharp-test/vit-small/open_clip_model.safetensors", err); // progress, in place on a terminal, as lines otherwise
        Assert.Contains("13.1 MiB", err);
        HubFixtures.AssertLoadsGoldenModel(path);

        (code, stdout, err) = CliRunner.Run("models", "info", "hf-hub:" + HubFixtures.OpenClipRepo);
        Assert.True(code == 0, err);
        Assert.Contains($"hub cache:     {Path.Combine(tmp.Path, "hf", "hub", "models--clipsharp-test--vit-small")}", stdout);
        var weights = Assert.Single(stdout.Split('\n'), l => l.Contains(" open_clip_model.safetensors ", StringComparison.Ordinal));
        Assert.Contains("13.1 MiB", weights);
        Assert.Contains(Path.Combine("snapshots", hub.CommitOf(HubFixtures.OpenClipRepo), "open_clip_model.safetensors"), weights);
        Assert.Contains("cached: yes", stdout);

        (code, stdout, _) = CliRunner.Run("models", "info", "ViT-L-14:laion2b_s32b_b82k", "--no-remote");
        Assert.Equal(0, code);
        Assert.Contains("normalisation: mean (0.5, 0.5, 0.5), std (0.5, 0.5, 0.5)", stdout);
        Assert.Contains("cached: no", stdout);
    }

    /// <summary>
    /// The proxy variables reach the download: a child <c>clip</c> process with <c>HTTP_PROXY</c> pointing at the test server
    /// (acting as a forward proxy) and an endpoint on a host that does not exist fetches through the proxy.
    /// </summary>
    [Fact]
    public async Task DownloadGoesThroughTheProxyTheEnvironmentNames()
    {
        using var proxy = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(proxy);
        using var tmp = new TestUtil.TempDir();
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host && File.Exists(host) ? host : "dotnet";
        var psi = new ProcessStartInfo(dotnet) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", Path.Combine(AppContext.BaseDirectory, "clip.dll"), "models", "download", "hf-hub:" + HubFixtures.OpenClipRepo }) psi.ArgumentList.Add(a);
        foreach (var n in new[] { "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "HF_TOKEN_PATH", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy" })
            psi.Environment.Remove(n);
        psi.Environment["HF_ENDPOINT"] = "http://hub.invalid";
        psi.Environment["HF_HOME"] = Path.Combine(tmp.Path, "hf");
        psi.Environment["XDG_CACHE_HOME"] = Path.Combine(tmp.Path, "xdg");
        psi.Environment["CLIPSHARP_CACHE"] = Path.Combine(tmp.Path, "clipsharp");
        psi.Environment["HTTP_PROXY"] = proxy.Endpoint;
        psi.Environment["http_proxy"] = proxy.Endpoint;

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var guard = new CancellationTokenSource(TimeSpan.FromMinutes(5)); // a hang guard only
        await p.WaitForExitAsync(guard.Token);
        Assert.True(p.ExitCode == 0, await stderr);
        Assert.NotEmpty(proxy.Log);
        Assert.All(proxy.Log, q => Assert.Equal("hub.invalid", q.Host));
        Assert.Contains(proxy.Log, q => q.Method == "GET" && q.Path == LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors"));
        var path = (await stdout).Trim();
        Assert.True(File.Exists(path), path);
    }
}
