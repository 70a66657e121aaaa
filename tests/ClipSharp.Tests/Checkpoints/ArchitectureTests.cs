using System.Text.Json;
using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;

namespace ClipSharp.Tests.Checkpoints;

public class ArchitectureTests
{
    public static TheoryData<string, string> LayoutFiles => new()
    {
        { "ViT-B-32.json", "ViT-B/32" }, { "ViT-B-16.json", "ViT-B/16" }, { "ViT-L-14.json", "ViT-L/14" }, { "RN50.json", "RN50" },
    };

    static IReadOnlyDictionary<string, long[]> Shapes(string file)
    {
        var d = new Dictionary<string, long[]>();
        foreach (var (k, s, _) in TestUtil.KeyList(Golden.Path("state_dict_keys", file), "keys")) d[k] = s;
        return d;
    }

    static ClipConfig ConfigFrom(string file, string field)
    {
        var root = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        return ClipConfig.FromJson(root[field]!.ToJsonString(), file);
    }

    [Theory]
    [MemberData(nameof(LayoutFiles))]
    public void InferenceMatchesBuildModelOnReleasedLayouts(string file, string name)
    {
        var inferred = ArchitectureInference.Infer(Shapes(file));
        var path = Golden.Path("state_dict_keys", file);
        Assert.Equal(ConfigFrom(path, "build_model_would_infer"), inferred);
        Assert.Equal(ConfigFrom(path, "hyperparameters"), NamedArchitectures.Get(name));
        var heads = JsonNode.Parse(File.ReadAllText(path))!["vision_heads_derived_by_CLIP_class"]!.GetValue<int>();
        Assert.Equal(heads, NamedArchitectures.Get(name).VisionHeads);
    }

    [Theory]
    [InlineData("vit_small")]
    [InlineData("rn_small")]
    public void GoldenSmallModelsInferOneTextHeadLikeBuildModel(string model)
    {
        using var sd = SafeTensors.Load(Golden.Path("models", model + ".safetensors"));
        var inferred = ArchitectureInference.Infer(sd);
        var cfgPath = Golden.Path("models", model + ".config.json");
        Assert.Equal(ConfigFrom(cfgPath, "build_model_would_infer"), inferred);
        Assert.Equal(1, inferred.TransformerHeads);
        // The true config has 2 heads: inference cannot see that.
        Assert.Equal(2, ClipConfig.FromJsonFile(cfgPath).TransformerHeads);
    }

    [Fact]
    public void NarrowTextWidthGivesAClearError()
    {
        var shapes = new Dictionary<string, long[]>(Shapes("ViT-B-32.json"));
        shapes["ln_final.weight"] = [32];
        var e = Assert.Throws<ClipSharpException>(() => ArchitectureInference.Infer(shapes));
        Assert.Contains("config JSON", e.Message);
        Assert.Contains("32", e.Message);
        shapes.Remove("token_embedding.weight");
        Assert.Contains("token_embedding.weight", Assert.Throws<ClipSharpException>(() => ArchitectureInference.Infer(shapes)).Message);
    }

    [Fact]
    public void NamedArchitecturesAcceptBothSpellingsAndListAll()
    {
        Assert.Equal(["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64", "ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"], NamedArchitectures.Names);
        Assert.Equal(NamedArchitectures.Get("ViT-B/32"), NamedArchitectures.Get("ViT-B-32"));
        Assert.Equal(NamedArchitectures.Get("ViT-L/14@336px"), NamedArchitectures.Get("ViT-L-14-336"));
        Assert.Equal(NamedArchitectures.Get("rn50x4"), NamedArchitectures.Get("RN50x4"));
        foreach (var n in NamedArchitectures.Names) NamedArchitectures.Get(n).Validate(n);

        var x4 = NamedArchitectures.Get("RN50x4");
        Assert.Equal((640, 288, 80, 640, 10), (x4.EmbedDim, x4.ImageResolution, x4.VisionWidth, x4.TransformerWidth, x4.TransformerHeads));
        Assert.Equal([4, 6, 10, 6], x4.VisionLayers);
        var x64 = NamedArchitectures.Get("RN50x64");
        Assert.Equal([3, 15, 36, 10], x64.VisionLayers);
        Assert.Equal((1024, 448, 128, 1024, 16), (x64.EmbedDim, x64.ImageResolution, x64.VisionWidth, x64.TransformerWidth, x64.TransformerHeads));
        var l336 = NamedArchitectures.Get("ViT-L/14@336px");
        Assert.Equal((768, 336, 1024, 14, 24), (l336.EmbedDim, l336.ImageResolution, l336.VisionWidth, l336.VisionPatchSize!.Value, l336.VisionLayers[0]));

        // Mutating a returned config does not leak into the table.
        NamedArchitectures.Get("RN50").VisionLayers[0] = 99;
        Assert.Equal(3, NamedArchitectures.Get("RN50").VisionLayers[0]);
        Assert.Contains("ViT-B/16", Assert.Throws<KeyNotFoundException>(() => NamedArchitectures.Get("ViT-X/99")).Message);
    }
}
