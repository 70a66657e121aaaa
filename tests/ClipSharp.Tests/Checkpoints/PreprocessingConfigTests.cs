using ClipSharp.Checkpoints;
using ClipSharp.Imaging;
using ClipSharp.Modeling;
using ClipSharp.Tests.Evaluation;
using static TorchSharp.torch;

namespace ClipSharp.Tests.Checkpoints;

/// <summary>Normalisation constants declared beside published weights reach the model's preprocessing.</summary>
public class PreprocessingConfigTests
{
    static readonly ClipConfig Tiny = new(32, 32, [1], 64, 8, 16, 100, 64, 2, 1) { VisionHeadsOverride = 2 };
    static readonly (float, float, float) Half = (0.5f, 0.5f, 0.5f);
    static readonly (float, float, float) Quarter = (0.25f, 0.25f, 0.25f);

    static string BareWeights(string dir, ClipModel model, string name = "open_clip_model")
    {
        Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, name + ".safetensors");
        using var sd = model.ExportStateDict();
        SafeTensors.Save(path, sd);
        File.WriteAllText(Path.Combine(dir, name + ".config.json"), Tiny.ToJson()); // the architecture; the constants come from elsewhere
        return path;
    }

    [Fact]
    public void OpenClipHubConfigSetsMeanAndStdAndSaveKeepsThem()
    {
        using var tmp = new TestData.TempDir();
        using var model = new ClipModel(Tiny);
        var weights = BareWeights(tmp["hub"], model);
        File.WriteAllText(Path.Combine(tmp["hub"], OpenClipConfig.HubConfigFileName),
            """{"model_cfg": {"embed_dim": 32}, "preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "interpolation": "bicubic", "resize_mode": "shortest"}}""");
        using var loaded = ClipModel.Load(weights); // architecture from open_clip_model.config.json, constants from the hub file
        Assert.Equal((Half, Quarter), loaded.Normalisation);

        // The model's own image path normalises with them.
        var image = TestData.ImageFolder(tmp["img"], perClass: 1);
        var file = Path.Combine(image, "red", "img0.png");
        using var scope = NewDisposeScope();
        var pre = new ClipImagePreprocessor(new ClipImagePreprocessorOptions { Size = 32, Mean = Half, Std = Quarter });
        Tensor expected;
        using (inference_mode()) expected = loaded.EncodeImage(pre.ProcessBatch([file]));
        TensorAssert.Absolute(loaded.EncodeImages([file]), expected, 0, "features with the declared normalisation");
        using (inference_mode())
        {
            var clipDefault = loaded.EncodeImage(new ClipImagePreprocessor(32).ProcessBatch([file]));
            Assert.True(TensorAssert.MaxAbsError(clipDefault, expected) > 1e-3, "the declared constants made no difference");
        }

        // A ClipSharp save carries them in its metadata.
        var saved = tmp["saved.safetensors"];
        loaded.Save(saved);
        using var again = ClipModel.Load(saved);
        Assert.Equal((Half, Quarter), again.Normalisation);
    }

    [Fact]
    public void HuggingFacePreprocessorConfigIsReadAndNothingDeclaredMeansClips()
    {
        using var tmp = new TestData.TempDir();
        using var model = new ClipModel(Tiny);
        var weights = BareWeights(tmp["plain"], model, "model");
        using (var plain = ClipModel.Load(weights))
            Assert.Equal((ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd), plain.Normalisation);

        File.WriteAllText(Path.Combine(tmp["plain"], "preprocessor_config.json"), """{"image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25], "crop_size": 32}""");
        using (var hf = ClipModel.Load(weights))
            Assert.Equal((Half, Quarter), hf.Normalisation);

        // Declarations beside the weights belong to the weights published with them: another checkpoint in the same
        // folder (here under its own name) keeps CLIP's constants, also with an OpenCLIP hub config present.
        File.WriteAllText(Path.Combine(tmp["plain"], OpenClipConfig.HubConfigFileName), """{"preprocess_cfg": {"mean": [0.1, 0.1, 0.1], "std": [0.2, 0.2, 0.2]}}""");
        var other = BareWeights(tmp["plain"], model, "ViT-B-32");
        using (var neighbour = ClipModel.Load(other))
            Assert.Equal((ClipImagePreprocessorOptions.ClipMean, ClipImagePreprocessorOptions.ClipStd), neighbour.Normalisation);
        Assert.Equal(Path.Combine(tmp["plain"], "ViT-B-32.config.json"), ClipModel.SiblingConfigPath(other));
        File.Delete(Path.Combine(tmp["plain"], "ViT-B-32.config.json"));
        Assert.Null(ClipModel.SiblingConfigPath(other));
    }

    [Theory]
    [InlineData("""{"preprocess_cfg": {"interpolation": "bilinear"}}""", "interpolation")]
    [InlineData("""{"preprocess_cfg": {"resize_mode": "squash"}}""", "resize_mode")]
    [InlineData("""{"preprocess_cfg": {"mean": [0.5, 0.5], "std": [1, 1, 1]}}""", "three numbers")]
    [InlineData("""{"preprocess_cfg": {"mean": [0.5, 0.5, 0.5], "std": [1, 0, 1]}}""", "positive")]
    public void UnsupportedOrMalformedDeclarationsAreRefusedNamingTheFile(string json, string expected)
    {
        using var tmp = new TestData.TempDir();
        using var model = new ClipModel(Tiny);
        var weights = BareWeights(tmp["hub"], model);
        var cfg = Path.Combine(tmp["hub"], OpenClipConfig.HubConfigFileName);
        File.WriteAllText(cfg, json);
        var e = Assert.Throws<ClipSharpException>(() => ClipModel.Load(weights).Dispose());
        Assert.Contains(expected, e.Message);
        Assert.Contains(cfg, e.Message);
    }
}
