using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Modeling;

/// <summary>
/// ClipSharp accepts every image resolution the reference CLIP constructs and runs (its strided convolutions and
/// average pools floor, so no multiple of 32 or of the patch is needed) and refuses, with a message, exactly those at
/// which the reference's forward fails. The PyTorch parity at these sizes is scripts/crosscheck-reference-limits.py.
/// Every outcome here holds for any weights and inputs (shapes, runs or fails, two models with the same weights), so the
/// tests draw from the process-wide generator without seeding it, beside other tests.
/// </summary>
public class ReferenceLimitsTests
{
    /// <summary>A tiny ResNet CLIP: width 8 (4 heads over a 256-wide attention pool), one bottleneck per stage.</summary>
    static ClipConfig ResNet(int resolution) => new(16, resolution, [1, 1, 1, 1], 8, null, 8, 50, 64, 1, 1);

    /// <summary>A tiny ViT CLIP: width 64 (one head), two layers.</summary>
    static ClipConfig Vit(int resolution, int patch) => new(16, resolution, [2], 64, patch, 8, 50, 64, 1, 1);

    static Tensor Ids(int n)
    {
        var ids = torch.randint(1, 48, [n, 8]);
        ids[TensorIndex.Colon, 5] = torch.tensor(49L);
        return ids;
    }

    [Theory]
    [InlineData(48, 1)]
    [InlineData(80, 2)]
    [InlineData(72, 2)]   // stage maps 18 → 9 → 4 (floored) → 2
    [InlineData(100, 3)]  // 25 → 12 → 6 → 3
    [InlineData(101, 3)]  // odd input: the stride-2 stem gives 51
    [InlineData(31, 1)]   // the smallest the reference runs: one position row, broadcast over both tokens
    public void ResNetAtResolutionsNotMultiplesOf32BuildsAndRuns(int resolution, int grid)
    {
        var config = ResNet(resolution);
        config.Validate();
        Assert.Equal(grid, ClipConfig.ResNetGrid(resolution));
        using var model = new ClipModel(config);
        model.eval();
        long[]? layer4 = null;
        model.Probe = (name, t) => { if (name == "visual.layer4.out") layer4 = t.shape; };
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var image = model.EncodeImage(torch.randn(2, 3, resolution, resolution));
        var text = model.EncodeText(Ids(3));
        Assert.Equal(new long[] { 2, 16 }, image.shape);
        Assert.Equal(new long[] { 3, 16 }, text.shape);
        Assert.True(image.isfinite().all().item<bool>(), "non-finite image features");
        Assert.Equal(new long[] { 2, 256, grid, grid }, layer4);
        // (resolution // 32)² + 1 positions, as the reference's attention pool.
        long rows = (resolution / 32) * (resolution / 32) + 1;
        Assert.Equal(new long[] { rows, 256 }, model.state_dict()["visual.attnpool.positional_embedding"].shape);
    }

    [Theory]
    [InlineData(70, 16, 4)]
    [InlineData(50, 7, 7)]
    [InlineData(16, 16, 1)]
    public void VitAtResolutionsNotMultiplesOfThePatchBuildsAndRuns(int resolution, int patch, int grid)
    {
        var config = Vit(resolution, patch);
        config.Validate();
        using var model = new ClipModel(config);
        model.eval();
        long[]? conv = null;
        model.Probe = (name, t) => { if (name == "visual.conv1.out") conv = t.shape; };
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var image = model.EncodeImage(torch.randn(2, 3, resolution, resolution));
        Assert.Equal(new long[] { 2, 16 }, image.shape);
        Assert.Equal(new long[] { 2, 64, grid, grid }, conv);
        Assert.Equal(new long[] { grid * grid + 1, 64 }, model.state_dict()["visual.positional_embedding"].shape);
    }

    [Fact]
    public void VitNeverSeesTheRemainderShortOfAPatchInFloat32OrBFloat16()
    {
        // A 70-px ViT with 16-px patches sees the top-left 64×64 pixels, exactly as the 64-px model with its weights:
        // in float32 (the strided convolution) and in bf16 (the patch-matrix product, which has to cut the remainder).
        using var at70 = new ClipModel(Vit(70, 16));
        using var at64 = new ClipModel(Vit(64, 16), initialize: false);
        using (var sd = at70.ExportStateDict()) at64.LoadWeights(sd);
        at70.eval(); at64.eval();
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var pixels = torch.randn(3, 3, 70, 70);
        var cropped = pixels.narrow(2, 0, 64).narrow(3, 0, 64).contiguous();
        var changed = pixels.clone();
        changed.narrow(2, 64, 6).fill_(TorchScalars.One);
        changed.narrow(3, 64, 6).fill_(TorchScalars.One);
        foreach (var precision in new[] { "float32", "bf16" })
        {
            var expected = at64.EncodeImage(cropped);
            var got = at70.EncodeImage(pixels);
            double err = got.sub(expected).abs().max().item<float>();
            Assert.True(err < 1e-6 * expected.abs().max().item<float>(), $"{precision}: 70 px differs from its 64-px crop by {err}");
            Assert.Equal(0, at70.EncodeImage(changed).sub(got).abs().max().item<float>());
            if (precision == "float32") { at70.UseBFloat16Weights(); at64.UseBFloat16Weights(); }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(30)]
    public void ResNetBelow31PxIsRefused(int resolution)
    {
        var json = ResNet(resolution).ToJson();
        var e = Assert.Throws<InvalidDataException>(() => ClipConfig.FromJson(json, "rn.json"));
        Assert.StartsWith("rn.json: ResNet image_resolution " + resolution + " is below 31 px", e.Message);
        Assert.Contains("average pool", e.Message);
    }

    [Theory]
    [InlineData(63, 2, 1)]
    [InlineData(95, 3, 2)]
    [InlineData(127, 4, 3)]
    public void ResNetWhoseGridOutgrowsItsPositionsIsRefused(int resolution, int grid, int positions)
    {
        var e = Assert.Throws<InvalidDataException>(() => ResNet(resolution).Validate("rn.json"));
        Assert.StartsWith($"rn.json: ResNet image_resolution {resolution} leaves a {grid}×{grid} grid", e.Message);
        Assert.Contains($"positions for {positions}×{positions}", e.Message);
        Assert.Contains($"{resolution - 1} or {resolution + 1} px work", e.Message);
        ResNet(resolution - 1).Validate();
        ResNet(resolution + 1).Validate();
    }

    [Fact]
    public void VitSmallerThanOnePatchOrWithoutAPatchIsRefused()
    {
        var e = Assert.Throws<InvalidDataException>(() => Vit(15, 16).Validate("vit.json"));
        Assert.Equal("vit.json: image_resolution 15 is smaller than one patch (vision_patch_size 16): the patch convolution has no output", e.Message);
        Assert.Contains("vision_patch_size 0 must be positive", Assert.Throws<InvalidDataException>(() => Vit(16, 0).Validate()).Message);
        Assert.Contains("vision_patch_size -4 must be positive", Assert.Throws<InvalidDataException>(() => Vit(16, -4).Validate()).Message);
    }

    [Fact]
    public void ValidateRefusesExactlyWhereTheTowerCannotRun()
    {
        // Each tower built directly (its constructor does not validate) and run: the resolutions at which the forward
        // fails in libtorch are the ones Validate refuses, and every other one runs; here the sides where the rules
        // change (the Python script shows the reference failing at the same ones over 1..160 px). A tower depends on the
        // resolution only through its position table ((r // 32)² + 1 or (r // patch)² + 1 rows): one per table size.
        using var scope = NewDisposeScope();
        using var _ = torch.no_grad();
        var wrong = new List<string>();
        var towers = new Dictionary<(string, int), ImageTower>();
        try
        {
            foreach (int r in (int[])[1, 2, 8, 29, 30, 31, 32, 33, 48, 62, 63, 64, 94, 95, 96, 101])
            {
                bool runs = Runs(Tower(("rn", r / 32), () => new ModifiedResNet([1, 1, 1, 1], 16, 4, r, 8)), r);
                if (runs != Accepts(ResNet(r))) wrong.Add($"ResNet {r} px: {(runs ? "runs" : "fails")}");
            }
            foreach (int r in (int[])[1, 7, 8, 9, 15, 16, 17, 70])
            {
                bool runs = Runs(Tower(("vit", r / 8), () => new VisionTransformer(r, 8, 64, 1, 1, 16)), r);
                if (runs != Accepts(Vit(r, 8))) wrong.Add($"ViT patch 8 at {r} px: {(runs ? "runs" : "fails")}");
            }
        }
        finally
        {
            foreach (var t in towers.Values) t.Dispose();
        }
        Assert.Empty(wrong);

        ImageTower Tower((string, int) key, Func<ImageTower> build)
        {
            if (!towers.TryGetValue(key, out var tower))
            {
                towers[key] = tower = build();
                tower.eval();
            }
            return tower;
        }
        static bool Runs(ImageTower tower, int r)
        {
            using var inner = NewDisposeScope();
            try { tower.forward(torch.randn(1, 3, r, r)); return true; }
            catch (Exception e) when (e is not Xunit.Sdk.XunitException) { return false; }
        }
        static bool Accepts(ClipConfig c)
        {
            try { c.Validate(); return true; }
            catch (InvalidDataException) { return false; }
        }
    }

    [Fact]
    public void LoadersAcceptTheseResolutions()
    {
        using var dir = new TempDir();
        // OpenCLIP model config of a ResNet at 80 px.
        var openClip = ClipConfig.FromJson("""
            {"embed_dim": 16, "vision_cfg": {"image_size": 80, "layers": [1, 1, 1, 1], "width": 8, "head_width": 2},
             "text_cfg": {"context_length": 8, "vocab_size": 50, "width": 64, "heads": 1, "layers": 1}}
            """, "open_clip.json");
        Assert.Equal((80, false), (openClip.ImageResolution, openClip.IsVit));
        // Hugging Face config.json of a 70-px ViT with 16-px patches.
        var hf = JsonNode.Parse(HuggingFaceLayout.ToConfigJson(Vit(64, 16)))!;
        hf["vision_config"]!["image_size"] = 70;
        File.WriteAllText(dir.File("config.json"), hf.ToJsonString());
        Assert.Equal(Vit(70, 16), HuggingFaceLayout.ReadConfig(dir.File("config.json")));
    }

    [Fact]
    public void InferenceFollowsBuildModelAndTheConfigGivesTheRealSide()
    {
        // build_model reads the side off the position table, so a 70-px ViT (4×4 patches) infers as 64 px and an 80-px
        // ResNet (2×2 grid) as 64 px: the same weights, the same grid. Saved by ClipSharp, the config travels with them.
        using var dir = new TempDir();
        foreach (var config in new[] { Vit(70, 16), ResNet(80) })
        {
            using var model = new ClipModel(config);
            using (var sd = model.ExportStateDict())
                Assert.Equal(config with { ImageResolution = 64 }, ArchitectureInference.Infer(sd));
            var path = dir.File($"{config.ImageResolution}.safetensors");
            model.Save(path);
            using var loaded = ClipModel.Load(path);
            Assert.Equal(config, loaded.Config);
            Assert.Equal(config.ImageResolution, loaded.CreatePreprocessor().Size);
            using var features = loaded.EncodeImages([Golden.Path("preprocess", "landscape.jpg")]);
            Assert.Equal(new long[] { 1, 16 }, features.shape);
        }
        // A 31-px ResNet has one position row: build_model would infer 0 px.
        using var small = new ClipModel(ResNet(31));
        using var weights = small.ExportStateDict();
        var e = Assert.Throws<InvalidDataException>(() => ArchitectureInference.Infer(weights));
        Assert.Contains("single row", e.Message);
        Assert.Contains("pass the config JSON", e.Message);
    }
}
