using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Hub;
using ClipSharp.Modeling;
using ClipSharp.Tests.Checkpoints;

namespace ClipSharp.Tests.Hub;

/// <summary>The pretrained table, name parsing and the environment variables, without a network.</summary>
public class PretrainedTableTests
{
    [Fact]
    public void EveryEntryIsAnArchitectureClipSharpBuilds()
    {
        Assert.Equal(68, PretrainedModels.All.Count);
        Assert.Equal(PretrainedModels.All.Count, PretrainedModels.All.Select(e => e.Name).Distinct().Count());
        foreach (var e in PretrainedModels.All)
        {
            var arch = PretrainedModels.ArchitectureOf(e.Architecture, [])!;
            var json = arch.HubConfigJson(e);
            var config = OpenClipConfig.Read((JsonObject)JsonNode.Parse(json)!, e.Name);
            config.Validate(e.Name);
            Assert.Equal(e.QuickGelu ? MlpActivation.QuickGelu : MlpActivation.Gelu, config.Activation);
            // The hub id is one ClipSharp accepts after hf-hub: too.
            Assert.IsType<PretrainedResolver.ModelName.Hub>(PretrainedResolver.Parse("hf-hub:" + e.HubRepository, null, new PretrainedOptions()));
        }
    }

    [Theory]
    [InlineData("RN50"), InlineData("RN101"), InlineData("RN50x4"), InlineData("RN50x16"), InlineData("RN50x64")]
    [InlineData("ViT-B/32"), InlineData("ViT-B/16"), InlineData("ViT-L/14"), InlineData("ViT-L/14@336px")]
    public void OpenAIEntriesDeclareTheReleasedArchitectures(string openAIName)
    {
        var e = PretrainedModels.Find(openAIName, "openai")!;
        Assert.True(e.QuickGelu);
        var config = OpenClipConfig.Read((JsonObject)JsonNode.Parse(PretrainedModels.ArchitectureOf(e.Architecture, [])!.HubConfigJson(e))!, e.Name);
        Assert.Equal(NamedArchitectures.Get(openAIName).ToJson(), config.ToJson());
        // OpenAI's URL carries the file's SHA-256 as its second-to-last segment.
        var segments = new Uri(e.Url!).Segments;
        Assert.Equal(e.UrlSha256 + "/", segments[^2]);
        Assert.Matches("^[0-9a-f]{64}$", e.UrlSha256!);
        Assert.StartsWith("https://openaipublic.azureedge.net/clip/models/", e.Url);
    }

    [Fact]
    public void WideHeadsAndOtherMlpRatiosOfTheLargeOpenClipModels()
    {
        ClipConfig Config(string arch, string tag)
        {
            var e = PretrainedModels.Find(arch, tag)!;
            return OpenClipConfig.Read((JsonObject)JsonNode.Parse(PretrainedModels.ArchitectureOf(e.Architecture, [])!.HubConfigJson(e))!, e.Name);
        }
        var h = Config("ViT-H-14", "laion2b_s32b_b79k");
        Assert.Equal((16, 5120, MlpActivation.Gelu), (h.EffectiveVisionHeads, h.VisionMlpWidth, h.Activation));
        var g = Config("ViT-g-14", "laion2b_s34b_b88k");
        Assert.Equal((16, 6144), (g.EffectiveVisionHeads, g.VisionMlpWidth));
        var big = Config("ViT-bigG-14", "laion2b_s39b_b160k");
        Assert.Equal((16, 8192, 1280, 20, 32), (big.EffectiveVisionHeads, big.VisionMlpWidth, big.TransformerWidth, big.TransformerHeads, big.TransformerLayers));
        var l = PretrainedModels.Find("ViT-L-14", "laion2b_s32b_b82k")!;
        Assert.Equal((0.5f, 0.5f, 0.5f), l.Mean);
        Assert.Contains("\"mean\": [\n      0.5,", PretrainedModels.ArchitectureOf("ViT-L-14", [])!.HubConfigJson(l).Replace("\r", ""));
    }

    [Fact]
    public void OpenClipReleaseUrlsCarryTheirHashPrefix()
    {
        var e = PretrainedModels.Find("ViT-B-32", "laion400m_e32")!;
        Assert.Equal("https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/vit_b_32-quickgelu-laion400m_e32-46683a32.pt", e.Url);
        Assert.Equal("46683a32", e.UrlSha256);
        Assert.All(PretrainedModels.All.Where(x => x.Url?.Contains("mlfoundations", StringComparison.Ordinal) == true), x => Assert.Matches("^[0-9a-f]{8}$", x.UrlSha256!));
        Assert.All(PretrainedModels.All.Where(x => x.Url?.Contains("fbaipublicfiles", StringComparison.Ordinal) == true), x => Assert.Null(x.UrlSha256));
    }

    [Fact]
    public void NamesAreMatchedAsOpenClipMatchesThem()
    {
        Assert.Equal("timm/vit_base_patch32_clip_224.openai", PretrainedModels.Find("ViT-B-32", "openai")!.HubRepository);
        Assert.Equal("laion/CLIP-ViT-B-32-laion2B-s34B-b79K", PretrainedModels.Find("vit-b-32", "LAION2B-S34B-B79K")!.HubRepository);
        Assert.Equal("ViT-B-32:laion400m_e31", PretrainedModels.Find("ViT-B-32-quickgelu", "laion400m_e31")!.Name);
        Assert.Null(PretrainedModels.Find("ViT-B-32-quickgelu", "laion2b_s34b_b79k")); // trained with GELU
        Assert.Equal("ViT-L-14-336:openai", PretrainedModels.Find("ViT-L/14@336px", "openai")!.Name);
        Assert.Null(PretrainedModels.Find("convnext_base", "laion400m_s13b_b51k"));
        Assert.Contains("metaclip_fullcc", PretrainedModels.TagsOf("ViT-bigG-14"));

        var o = new PretrainedOptions();
        Assert.Equal("ViT-B-32:openai", ((PretrainedResolver.ModelName.Table)PretrainedResolver.Parse("ViT-B/32", null, o)).Entry.Name);
        Assert.Equal("RN50:cc12m", ((PretrainedResolver.ModelName.Table)PretrainedResolver.Parse("RN50:cc12m", null, o)).Entry.Name);
        Assert.Equal("ViT-H-14:laion2b_s32b_b79k", ((PretrainedResolver.ModelName.Table)PretrainedResolver.Parse("ViT-H-14", "laion2b_s32b_b79k", o)).Entry.Name);
        var hub = (PretrainedResolver.ModelName.Hub)PretrainedResolver.Parse("hf-hub:openai/clip-vit-base-patch32@refs/pr/1", null, o);
        Assert.Equal(("openai/clip-vit-base-patch32", "refs/pr/1"), (hub.Repo, hub.Revision));

        Assert.Contains("needs a pretrained tag", Assert.Throws<HubException>(() => PretrainedResolver.Parse("ViT-H-14", null, o)).Message);
        Assert.Contains("is not an architecture in the table", Assert.Throws<HubException>(() => PretrainedResolver.Parse("ViT-Q-99:foo", null, o)).Message);
        Assert.Contains("not a hub repository id", Assert.Throws<HubException>(() => PretrainedResolver.Parse("hf-hub:../../etc", null, o)).Message);
        Assert.Contains("not a hub repository id", Assert.Throws<HubException>(() => PretrainedResolver.Parse("hf-hub:org/name/file.bin", null, o)).Message);
        Assert.Contains("not a revision", Assert.Throws<HubException>(() => PretrainedResolver.Parse("hf-hub:org/name@../x", null, o)).Message);
        Assert.Contains("goes with an architecture name", Assert.Throws<HubException>(() => PretrainedResolver.Parse("hf-hub:org/name", "openai", o)).Message);

        Assert.True(PretrainedResolver.IsPretrainedName("ViT-B-32:openai"));
        Assert.True(PretrainedResolver.IsPretrainedName("RN50"));
        Assert.True(PretrainedResolver.IsPretrainedName("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K"));
        Assert.True(PretrainedResolver.IsPretrainedName("local-dir:/models/x"));
        Assert.False(PretrainedResolver.IsPretrainedName("/models/ViT-B-32.pt"));
        Assert.False(PretrainedResolver.IsPretrainedName("model.safetensors"));
        Assert.False(PretrainedResolver.IsPretrainedName(@"C:\models\ViT-B-32.pt"));
    }

    [Fact]
    public void EnvironmentVariablesAsTheHuggingFaceToolsReadThem()
    {
        PretrainedOptions From(params (string, string)[] vars)
        {
            var d = vars.ToDictionary(v => v.Item1, v => v.Item2);
            d.TryAdd("HOME", "/home/u");
            return PretrainedOptions.FromEnvironment(n => d.GetValueOrDefault(n));
        }
        var defaults = From();
        Assert.Equal("https://huggingface.co", defaults.Endpoint);
        Assert.Equal("/home/u/.cache/huggingface/hub", defaults.HubCacheDir);
        Assert.Equal("/home/u/.cache/clip", defaults.UrlCacheDir);
        Assert.Equal("/home/u/.cache/clipsharp", defaults.ClipSharpCacheDir);
        Assert.False(defaults.Offline);
        Assert.Null(defaults.Token);

        Assert.Equal("/x/hub", From(("HF_HOME", "/x")).HubCacheDir);
        Assert.Equal("/c", From(("HF_HOME", "/x"), ("HF_HUB_CACHE", "/c")).HubCacheDir);
        Assert.Equal("/home/u/hf/hub", From(("HF_HOME", "~/hf")).HubCacheDir);
        Assert.Equal("/xdg/huggingface/hub", From(("XDG_CACHE_HOME", "/xdg")).HubCacheDir);
        Assert.Equal("/xdg/clip", From(("XDG_CACHE_HOME", "/xdg")).UrlCacheDir);
        Assert.Equal("https://hf-mirror.example", From(("HF_ENDPOINT", "https://hf-mirror.example/")).Endpoint);
        foreach (var yes in new[] { "1", "true", "ON", "yes" }) Assert.True(From(("HF_HUB_OFFLINE", yes)).Offline);
        foreach (var no in new[] { "0", "false", "" }) Assert.False(From(("HF_HUB_OFFLINE", no)).Offline);
        Assert.Equal("hf_abc", From(("HF_TOKEN", "hf_abc")).Token);

        using var tmp = new TestUtil.TempDir();
        File.WriteAllText(tmp.File("token"), "hf_saved\n");
        Assert.Equal("hf_saved", From(("HF_HOME", tmp.Path)).Token);
        Assert.Equal("hf_env", From(("HF_HOME", tmp.Path), ("HF_TOKEN", "hf_env")).Token);
    }

    [Fact]
    public void HubCodeStaysFreeOfTorchSharp()
    {
        // The resolver belongs to the layer that has no libtorch: it must not reach the Torch backend.
        var resolver = Assert.Single(Directory.GetFiles(Path.Combine(RepoRoot(), "src"), "PretrainedResolver.cs", SearchOption.AllDirectories));
        var sources = Directory.GetFiles(Path.GetDirectoryName(resolver)!, "*.cs");
        Assert.NotEmpty(sources);
        foreach (var f in sources)
        {
            var text = File.ReadAllText(f);
            foreach (var banned in new[] { "TorchSharp", "ClipSharp.Modeling", "ClipSharp.Checkpoints", "ClipSharp.Training" })
                Assert.False(text.Contains(banned, StringComparison.Ordinal), $"{Path.GetFileName(f)} uses {banned}");
        }
    }

    static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "ClipSharp.slnx"))) return d.FullName;
        throw new DirectoryNotFoundException("repository root");
    }
}
