using System.Security.Cryptography;
using ClipSharp.Hub;
using ClipSharp.Tests.Checkpoints;
using ClipSharp.Text;

namespace ClipSharp.Tests.Hub;

/// <summary>
/// Name resolution and downloads against a loopback server laid out like the Hugging Face hub, serving the golden vit_small
/// model: the hub's headers and redirects, a plain static mirror, resumed and truncated bodies, checksums, 401/404,
/// the cache shared with Python's huggingface_hub, and offline mode.
/// </summary>
public class PretrainedResolverTests
{
    static string OpenClipName => PretrainedResolver.HubPrefix + HubFixtures.OpenClipRepo;

    [Fact]
    public void OpenClipRepositoryDownloadsIntoTheHubCacheAndLoadsAsTheReference()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);
        var progress = new List<DownloadProgress>();

        var r = PretrainedResolver.Resolve(OpenClipName, options: o, progress: new SyncProgress(progress));

        Assert.Equal(OpenClipName, r.Name);
        string commit = hub.CommitOf(HubFixtures.OpenClipRepo);
        Assert.Equal($"{OpenClipName}@{commit}", r.Source);
        // Laid out as huggingface_hub lays it out: blob named by the SHA-256 (the LFS ETag), a relative link, the ref.
        var repoDir = Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small");
        var snapshot = Path.Combine(repoDir, "snapshots", commit, "open_clip_model.safetensors");
        Assert.Equal($"../../blobs/{LoopbackHub.Sha256(HubFixtures.Weights)}", new FileInfo(snapshot).LinkTarget);
        Assert.Equal(HubFixtures.Weights, File.ReadAllBytes(snapshot));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(repoDir, "refs", "main")));
        Assert.True(File.Exists(Path.Combine(repoDir, "snapshots", commit, "open_clip_config.json")));
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(repoDir, "blobs"), "*.incomplete"));
        Assert.Contains(progress, p => p.File.EndsWith("open_clip_model.safetensors", StringComparison.Ordinal) && p.BytesDone == HubFixtures.Weights.Length && p.TotalBytes == HubFixtures.Weights.Length);

        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
        // The repository's tokenizer files sit beside the weights, where the vocabulary locator looks first.
        Assert.Equal(Path.GetDirectoryName(r.CheckpointPath), r.VocabularyPath);
        var tok = VocabularyLocator.Load(null, r.CheckpointPath);
        var reference = ClipTokenizer.FromBpeFile(Golden.Path("bpe_simple_vocab_16e6.txt.gz"));
        Assert.Equal(reference.Tokenize("a photo of a cat."), tok.Tokenize("a photo of a cat."));

        // A second resolve is served from the cache: no request at all.
        int before = hub.RequestCount;
        var again = PretrainedResolver.Resolve(OpenClipName, options: o);
        Assert.Equal(before, hub.RequestCount);
        Assert.Equal(r.CheckpointPath, again.CheckpointPath);
    }

    [Fact]
    public void TransformersLayoutResolvesToTheSnapshotFolder()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddHfRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var r = PretrainedResolver.Resolve(PretrainedResolver.HubPrefix + HubFixtures.HfRepo, options: o);

        string commit = hub.CommitOf(HubFixtures.HfRepo);
        Assert.Equal(Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small-hf", "snapshots", commit), r.CheckpointPath);
        Assert.Equal(r.CheckpointPath, r.VocabularyPath);
        Assert.Null(r.ConfigPath);
        // The absent optional file is remembered the way huggingface_hub remembers it.
        Assert.True(File.Exists(Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small-hf", ".no_exist", commit, "open_clip_config.json")));
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void RedirectToAnotherPathIsFollowedAndTheLinkedEtagNamesTheBlob()
    {
        using var hub = new LoopbackHub { RedirectLfs = true };
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path) with { Token = "secret-token" };

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);

        string sha = LoopbackHub.Sha256(HubFixtures.Weights);
        Assert.Contains(hub.Log, q => q.Method == "GET" && q.Path == "/cdn/" + sha);
        Assert.True(File.Exists(Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small", "blobs", sha)));
        // The token goes to the hub (same host here, so the CDN path gets it too; a different host would not).
        Assert.All(hub.Log, q => Assert.Equal("Bearer secret-token", q.Headers.GetValueOrDefault("Authorization")));
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void PlainStaticServerWithoutEtagOrCommitNamesBlobsBySha256AndSnapshotsByRevision()
    {
        using var hub = new LoopbackHub { HubHeaders = false, RedirectLfs = true };
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);

        var repoDir = Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small");
        Assert.Equal("main", File.ReadAllText(Path.Combine(repoDir, "refs", "main")));
        var link = new FileInfo(Path.Combine(repoDir, "snapshots", "main", "open_clip_model.safetensors")).LinkTarget;
        Assert.Equal($"../../blobs/{LoopbackHub.Sha256(HubFixtures.Weights)}", link);
        var config = new FileInfo(Path.Combine(repoDir, "snapshots", "main", "open_clip_config.json")).LinkTarget;
        Assert.Equal($"../../blobs/{LoopbackHub.Sha256(HubFixtures.OpenClipConfig)}", config);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);

        // Offline, the same cache serves it.
        var offline = PretrainedResolver.Resolve(OpenClipName, options: o with { Offline = true, Endpoint = "http://127.0.0.1:9" });
        Assert.Equal(r.CheckpointPath, offline.CheckpointPath);
    }

    [Fact]
    public void InterruptedBodyIsResumedWithARangeRequest()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        string weightsPath = LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors");
        const int cutAt = 1_000_000;
        hub.Cut[weightsPath] = (1, cutAt);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);

        var gets = hub.Log.Where(q => q.Method == "GET" && q.Path == weightsPath).ToList();
        Assert.Equal(2, gets.Count);
        Assert.False(gets[0].Headers.ContainsKey("Range"));
        Assert.Equal($"bytes={cutAt}-", gets[1].Headers["Range"]);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void PartialFileOfAnEarlierRunIsResumedByTheNextOne()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        string weightsPath = LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors");
        const int cutAt = 3_000_000;
        hub.Cut[weightsPath] = (1, cutAt);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path) with { MaxAttempts = 1 };

        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o));
        Assert.Equal(HubErrorKind.Truncated, e.Kind);
        string sha = LoopbackHub.Sha256(HubFixtures.Weights);
        var incomplete = Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small", "blobs", sha + ".incomplete");
        Assert.Equal(cutAt, new FileInfo(incomplete).Length); // named as huggingface_hub names it, so either can resume it
        Assert.Contains("resumes", e.Message);

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);
        Assert.Equal($"bytes={cutAt}-", hub.Log.Last(q => q.Method == "GET" && q.Path == weightsPath).Headers["Range"]);
        Assert.False(File.Exists(incomplete));
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void BodyThatKeepsEndingEarlyIsReportedAsTruncated()
    {
        using var hub = new LoopbackHub { IgnoreRange = true };
        HubFixtures.AddOpenClipRepo(hub);
        string weightsPath = LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors");
        hub.Cut[weightsPath] = (100, 5000);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o));

        Assert.Equal(HubErrorKind.Truncated, e.Kind);
        Assert.Contains($"5000 of {HubFixtures.Weights.Length} bytes announced by Content-Length", e.Message);
        Assert.Contains("open_clip_model.safetensors", e.Message);
        Assert.Equal(o.MaxAttempts, hub.Log.Count(q => q.Method == "GET" && q.Path == weightsPath));
    }

    [Fact]
    public void ServerErrorsAreRetriedWithTheInjectedBackoff()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        string weightsPath = LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors");
        hub.Statuses[weightsPath] = new Queue<int>([503, 500]);
        using var tmp = new TestUtil.TempDir();
        var waits = new List<int>();
        var o = HubFixtures.Options(hub, tmp.Path) with { RetryDelay = n => { lock (waits) waits.Add(n); return TimeSpan.Zero; } };

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);

        Assert.Equal([1, 2], waits);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void WrongSha256IsRefusedAndNothingIsLeftInTheCache()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        string weightsPath = LoopbackHub.ResolvePath(HubFixtures.OpenClipRepo, "open_clip_model.safetensors");
        string claimed = new string('a', 64);
        hub.ClaimedSha256[weightsPath] = claimed;
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o));

        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Contains($"expected {claimed}", e.Message);
        Assert.Contains(LoopbackHub.Sha256(HubFixtures.Weights), e.Message);
        var repoDir = Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small");
        Assert.DoesNotContain(Directory.EnumerateFiles(Path.Combine(repoDir, "blobs")), f => new FileInfo(f).Length == HubFixtures.Weights.Length || f.EndsWith(".incomplete", StringComparison.Ordinal));
        Assert.False(Directory.EnumerateFileSystemEntries(Path.Combine(repoDir, "snapshots"), "open_clip_model.safetensors", SearchOption.AllDirectories).Any());
        Assert.Null(PretrainedResolver.FindCached(OpenClipName, options: o));
    }

    [Fact]
    public void MissingFileAndMissingRepositoryGiveClearMessages()
    {
        using var hub = new LoopbackHub();
        hub.Add("clipsharp-test/no-weights", "open_clip_config.json", HubFixtures.OpenClipConfig);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var noWeights = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("hf-hub:clipsharp-test/no-weights", options: o));
        Assert.Equal(HubErrorKind.NotFound, noWeights.Kind);
        Assert.Equal("hf-hub:clipsharp-test/no-weights: the repository has neither open_clip_model.safetensors nor open_clip_pytorch_model.bin at revision 'main'", noWeights.Message);

        var noRepo = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("hf-hub:clipsharp-test/nothing-here", options: o));
        Assert.Equal(HubErrorKind.NotFound, noRepo.Kind);
        Assert.StartsWith("hf-hub:clipsharp-test/nothing-here: no such repository on http://127.0.0.1:", noRepo.Message);
        Assert.Contains("set HF_TOKEN if it is private", noRepo.Message);

        // A plain static server has no error codes: a missing repository reads as missing files.
        hub.HubHeaders = false;
        var plain = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("hf-hub:clipsharp-test/absent", options: o));
        Assert.Equal("hf-hub:clipsharp-test/absent: the repository has neither open_clip_config.json (OpenCLIP) nor config.json (transformers) at revision 'main'", plain.Message);
    }

    [Fact]
    public void GatedRepositoryExplainsHfToken()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        hub.RepoStatus[HubFixtures.OpenClipRepo] = 401;
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);

        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o));
        Assert.Equal(HubErrorKind.AccessDenied, e.Kind);
        Assert.Contains("access denied (HTTP 401", e.Message);
        Assert.Contains("private or gated; accept its terms on the hub and set HF_TOKEN", e.Message);

        hub.RepoStatus[HubFixtures.OpenClipRepo] = 403;
        var withToken = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o with { Token = "hf_wrong" }));
        Assert.Contains("HTTP 403", withToken.Message);
        Assert.Contains("the token (HF_TOKEN or the saved login) was refused", withToken.Message);
        Assert.Contains(hub.Log, q => q.Headers.GetValueOrDefault("Authorization") == "Bearer hf_wrong");
    }

    [Fact]
    public void FilesAPythonUserDownloadedAreUsedWithoutAnyRequest()
    {
        using var hub = new LoopbackHub();
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);
        // The layout huggingface_hub writes: blobs by hash, relative links, refs/main.
        string commit = new('c', 40);
        WritePythonCache(o.HubCacheDir, HubFixtures.OpenClipRepo, commit, new()
        {
            ["open_clip_config.json"] = HubFixtures.OpenClipConfig,
            ["open_clip_model.safetensors"] = HubFixtures.Weights,
            ["vocab.json"] = HubFixtures.Tokenizer.Vocab,
            ["merges.txt"] = HubFixtures.Tokenizer.Merges,
        });

        var r = PretrainedResolver.Resolve(OpenClipName, options: o);

        Assert.Equal(0, hub.RequestCount);
        Assert.Equal($"{OpenClipName}@{commit}", r.Source);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void OfflineWorksFromTheCacheAndFailsClearlyWhenNotCached()
    {
        using var hub = new LoopbackHub();
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path) with { Offline = true };
        WritePythonCache(o.HubCacheDir, HubFixtures.HfRepo, new string('d', 40), new()
        {
            ["config.json"] = HubFixtures.HuggingFace.Config,
            ["model.safetensors"] = HubFixtures.HuggingFace.Weights,
            ["vocab.json"] = HubFixtures.Tokenizer.Vocab,
            ["merges.txt"] = HubFixtures.Tokenizer.Merges,
        });

        var r = PretrainedResolver.Resolve(PretrainedResolver.HubPrefix + HubFixtures.HfRepo, options: o);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);

        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve(OpenClipName, options: o));
        Assert.Equal(HubErrorKind.NotCached, e.Kind);
        Assert.Contains("HF_HUB_OFFLINE is set", e.Message);
        Assert.Contains(HubFixtures.OpenClipRepo, e.Message);
        var table = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("ViT-B-32", "openai", o));
        Assert.Equal(HubErrorKind.NotCached, table.Kind);
        Assert.Contains("models--timm--vit_base_patch32_clip_224.openai", table.Message);
        Assert.Contains(Path.Combine(o.UrlCacheDir, "ViT-B-32.pt"), table.Message);
        Assert.Equal(0, hub.RequestCount);
    }

    [Fact]
    public void TableEntryGetsTheTablesConfigBesideTheHubWeights()
    {
        using var hub = new LoopbackHub();
        // The hub's own config says GELU; the table entry says QuickGELU, which the model was trained with.
        var geluConfig = System.Text.Encoding.UTF8.GetString(HubFixtures.OpenClipConfig).Replace("\"quick_gelu\":true,", "", StringComparison.Ordinal);
        hub.Add("clipsharp-test/table-model", "open_clip_config.json", System.Text.Encoding.UTF8.GetBytes(geluConfig));
        hub.Add("clipsharp-test/table-model", "open_clip_model.safetensors", HubFixtures.Weights);
        using var tmp = new TestUtil.TempDir();
        var o = TestTable(HubFixtures.Options(hub, tmp.Path), new PretrainedWeights("vit-small-test", "golden", "clipsharp-test/table-model", QuickGelu: true));

        var r = PretrainedResolver.Resolve("vit-small-test:golden", options: o);

        Assert.Equal(Path.Combine(o.ClipSharpCacheDir, "pretrained", "vit-small-test--golden", "open_clip_model.safetensors"), r.CheckpointPath);
        Assert.Equal(Path.Combine(Path.GetDirectoryName(r.CheckpointPath)!, "open_clip_config.json"), r.ConfigPath);
        Assert.Contains("\"quick_gelu\": true", File.ReadAllText(r.ConfigPath!));
        // The table's models use OpenAI's vocabulary, which is built in: no tokenizer request.
        Assert.Null(r.VocabularyPath);
        Assert.DoesNotContain(hub.Log, q => q.Path.EndsWith("vocab.json", StringComparison.Ordinal));
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    [Fact]
    public void ReleaseUrlIsTheSecondSourceWithItsSha256Checked()
    {
        using var hub = new LoopbackHub();
        string sha = LoopbackHub.Sha256(HubFixtures.JitWeights);
        hub.AddRaw($"/clip/models/{sha}/vit_small.pt", HubFixtures.JitWeights);
        using var tmp = new TestUtil.TempDir();
        var entry = new PretrainedWeights("vit-small-test", "openai", "clipsharp-test/not-on-the-hub", QuickGelu: true,
            Url: $"{hub.Endpoint}/clip/models/{sha}/vit_small.pt", UrlSha256: sha);
        var o = TestTable(HubFixtures.Options(hub, tmp.Path), entry);

        var r = PretrainedResolver.Resolve("vit-small-test", "openai", o);

        Assert.Equal(entry.Url, r.Source);
        Assert.Contains(r.Notes, n => n.Contains("used the release URL", StringComparison.Ordinal));
        Assert.Equal(HubFixtures.JitWeights, File.ReadAllBytes(Path.Combine(o.UrlCacheDir, "vit_small.pt")));
        // The release holds float16 weights (as OpenAI's do), so compare with the same file loaded directly.
        using (var viaName = ClipSharp.Modeling.ClipModel.Load(r.CheckpointPath))
        using (var direct = ClipSharp.Modeling.ClipModel.Load(Golden.Path("models", "vit_small.jit.pt"), Golden.Path("models", "vit_small.config.json")))
        using (var scope = TorchSharp.torch.NewDisposeScope())
        using (var _ = TorchSharp.torch.no_grad())
        {
            var pixels = TorchSharp.torch.rand(2, 3, 64, 64, generator: new TorchSharp.torch.Generator(7));
            TensorAssert.Absolute(viaName.EncodeImage(pixels), direct.EncodeImage(pixels), 0, "image_embeds");
        }
        // Next time the verified copy is used without a request.
        int before = hub.RequestCount;
        PretrainedResolver.Resolve("vit-small-test:openai", options: o);
        Assert.Equal(before, hub.RequestCount);

        // A release whose bytes do not hash to the published value is refused and not kept.
        using var tmp2 = new TestUtil.TempDir();
        var bad = entry with { UrlSha256 = new string('0', 64) };
        var o2 = TestTable(HubFixtures.Options(hub, tmp2.Path), bad);
        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("vit-small-test:openai", options: o2));
        Assert.Equal(HubErrorKind.ChecksumMismatch, e.Kind);
        Assert.Contains("the hub failed", e.Message);
        Assert.False(Directory.Exists(o2.UrlCacheDir) && Directory.EnumerateFiles(o2.UrlCacheDir).Any());
    }

    [Fact]
    public void LocalDirInEitherLayout()
    {
        using var tmp = new TestUtil.TempDir();
        var openClip = Directory.CreateDirectory(Path.Combine(tmp.Path, "oc")).FullName;
        File.WriteAllBytes(Path.Combine(openClip, "open_clip_config.json"), HubFixtures.OpenClipConfig);
        File.WriteAllBytes(Path.Combine(openClip, "open_clip_model.safetensors"), HubFixtures.Weights);
        var r = PretrainedResolver.Resolve("local-dir:" + openClip);
        Assert.Equal(Path.Combine(openClip, "open_clip_model.safetensors"), r.CheckpointPath);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);

        var empty = Directory.CreateDirectory(Path.Combine(tmp.Path, "empty")).FullName;
        var e = Assert.Throws<HubException>(() => PretrainedResolver.Resolve("local-dir:" + empty));
        Assert.Contains("neither OpenCLIP's open_clip_config.json", e.Message);
        Assert.Throws<HubException>(() => PretrainedResolver.Resolve("local-dir:" + Path.Combine(tmp.Path, "missing")));
    }

    [Fact]
    public void CancelledDownloadKeepsThePartialFileForTheNextRun()
    {
        using var hub = new LoopbackHub();
        HubFixtures.AddOpenClipRepo(hub);
        using var tmp = new TestUtil.TempDir();
        var o = HubFixtures.Options(hub, tmp.Path);
        using var cts = new CancellationTokenSource();
        // Cancel from the progress callback once the first megabyte is on disk: no timing involved.
        var progress = new SyncProgress([], p => { if (p.File.EndsWith(".safetensors", StringComparison.Ordinal) && p.BytesDone >= 1 << 20) cts.Cancel(); });

        Assert.ThrowsAny<OperationCanceledException>(() => PretrainedResolver.Resolve(OpenClipName, options: o, progress: progress, cancellationToken: cts.Token));

        var blobs = Path.Combine(o.HubCacheDir, "models--clipsharp-test--vit-small", "blobs");
        var partial = Assert.Single(Directory.EnumerateFiles(blobs, "*.incomplete"));
        Assert.True(new FileInfo(partial).Length >= 1 << 20);
        var r = PretrainedResolver.Resolve(OpenClipName, options: o);
        Assert.StartsWith("bytes=", hub.Log.Last(q => q.Method == "GET" && q.Path.EndsWith(".safetensors", StringComparison.Ordinal)).Headers["Range"]);
        HubFixtures.AssertLoadsGoldenModel(r.CheckpointPath);
    }

    internal static PretrainedOptions TestTable(PretrainedOptions o, params PretrainedWeights[] entries) =>
        o with { ExtraEntries = entries, ExtraArchitectures = [HubFixtures.Architecture] };

    /// <summary>Writes files the way huggingface_hub caches them (blob named by SHA-256, relative snapshot link, refs/main).</summary>
    internal static void WritePythonCache(string cacheDir, string repo, string commit, Dictionary<string, byte[]> files)
    {
        var repoDir = Path.Combine(cacheDir, "models--" + repo.Replace("/", "--"));
        Directory.CreateDirectory(Path.Combine(repoDir, "blobs"));
        Directory.CreateDirectory(Path.Combine(repoDir, "snapshots", commit));
        Directory.CreateDirectory(Path.Combine(repoDir, "refs"));
        File.WriteAllText(Path.Combine(repoDir, "refs", "main"), commit);
        foreach (var (name, data) in files)
        {
            var blob = Convert.ToHexString(SHA256.HashData(data)).ToLowerInvariant();
            File.WriteAllBytes(Path.Combine(repoDir, "blobs", blob), data);
            File.CreateSymbolicLink(Path.Combine(repoDir, "snapshots", commit, name), $"../../blobs/{blob}");
        }
    }

    /// <summary>An IProgress that records (and optionally reacts) on the reporting thread, unlike Progress&lt;T&gt;.</summary>
    internal sealed class SyncProgress(List<DownloadProgress> seen, Action<DownloadProgress>? onReport = null) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value)
        {
            lock (seen) seen.Add(value);
            onReport?.Invoke(value);
        }
    }
}
