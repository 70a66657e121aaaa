using System.Text.Json.Nodes;
using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Modeling;

/// <summary>
/// The architecture choices OpenCLIP models make that OpenAI's do not: exact GELU, wider attention heads and other
/// MLP widths, read from OpenCLIP model configs, Hugging Face configs, ClipSharp's JSON and (for MLP widths) the weights.
/// </summary>
public class ActivationAndOpenClipConfigTests
{
    /// <summary>A tiny ViT CLIP with every OpenCLIP-only choice set: GELU, 32-wide heads, MLP widths 96 and 160.</summary>
    static readonly ClipConfig Tiny = new ClipConfig(32, 32, [2], 64, 8, 16, 100, 64, 2, 2)
    {
        VisionHeadsOverride = 2,
        Activation = MlpActivation.Gelu,
        VisionMlpWidthOverride = 96,
        TextMlpWidthOverride = 160,
    };

    /// <summary>The same model as an OpenCLIP config: head_width 32, mlp_ratio 1.5 and 2.5, no quick_gelu.</summary>
    const string TinyOpenClip = """
        {"embed_dim": 32,
         "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 1.5, "patch_size": 8},
         "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.5}}
        """;

    [Fact]
    public void GeluMlpIsTheErfGeluBetweenItsProjections()
    {
        using var scope = NewDisposeScope();
        torch.manual_seed(11);
        using var mlp = new Mlp(16, 40, MlpActivation.Gelu);
        var x = torch.randn(3, 5, 16);
        Tensor y;
        using (torch.no_grad()) y = mlp.forward(x);
        Assert.Equal(new long[] { 3, 5, 16 }, y.shape);

        // float64 reference: h = x W1ᵀ + b1, a = h · ½(1 + erf(h/√2)), y = a W2ᵀ + b2.
        var x64 = x.to(ScalarType.Float64);
        var h = x64.matmul(mlp.CFc.weight!.to(ScalarType.Float64).t()).add(mlp.CFc.bias!.to(ScalarType.Float64), TorchScalars.One);
        using Scalar half = 0.5.ToScalar(), invSqrt2 = (1 / Math.Sqrt(2)).ToScalar();
        var a = h.mul(torch.special.erf(h.mul(invSqrt2)).add(TorchScalars.One, TorchScalars.One)).mul(half);
        var expected = a.matmul(mlp.CProj.weight!.to(ScalarType.Float64).t()).add(mlp.CProj.bias!.to(ScalarType.Float64), TorchScalars.One);
        double err = y.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        Assert.True(err < 1e-5, $"GELU MLP differs from the float64 reference by {err}");

        // The QuickGELU MLP with the same weights gives a clearly different result, so the switch is real.
        using var quick = new Mlp(16, 40, MlpActivation.QuickGelu);
        using (torch.no_grad())
        {
            quick.CFc.weight!.copy_(mlp.CFc.weight!); quick.CFc.bias!.copy_(mlp.CFc.bias!);
            quick.CProj.weight!.copy_(mlp.CProj.weight!); quick.CProj.bias!.copy_(mlp.CProj.bias!);
            double gap = quick.forward(x).sub(y).abs().max().item<float>();
            Assert.True(gap > 1e-3, $"QuickGELU and GELU MLPs agree to {gap}");
        }
    }

    [Fact]
    public void OpenClipConfigDescribesTheSameModel()
    {
        var cfg = ClipConfig.FromJson(TinyOpenClip, "tiny.json");
        Assert.Equal(Tiny, cfg);
        Assert.Equal(MlpActivation.Gelu, cfg.Activation);
        Assert.Equal(96, cfg.VisionMlpWidth);
        Assert.Equal(160, cfg.TextMlpWidth);

        // As published on the hub: under model_cfg, beside the preprocessing config.
        var hub = "{\"model_cfg\": " + TinyOpenClip +
            """, "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}""";
        Assert.Equal(Tiny, ClipConfig.FromJson(hub, OpenClipConfig.HubConfigFileName));

        // ClipSharp's own JSON round-trips every field, and the model built from it has the MLP shapes.
        var back = ClipConfig.FromJson(Tiny.ToJson());
        Assert.Equal(Tiny, back);
        Assert.Equal(Tiny.ToJson(), back.ToJson());
        using var model = new ClipModel(Tiny);
        var shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        Assert.Equal(new long[] { 96, 64 }, shapes["visual.transformer.resblocks.1.mlp.c_fc.weight"]);
        Assert.Equal(new long[] { 64, 160 }, shapes["transformer.resblocks.0.mlp.c_proj.weight"]);
    }

    [Fact]
    public void PublishedOpenClipConfigsMapToTheirArchitectures()
    {
        const string text = "\"text_cfg\": {\"context_length\": 77, \"vocab_size\": 49408, \"width\": 512, \"heads\": 8, \"layers\": 12}";
        // ViT-B-32 (the LAION models): the OpenAI shapes with exact GELU; ViT-B-32-quickgelu is OpenAI's exactly.
        var b32 = """{"embed_dim": 512, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32}, """ + text + "}";
        Assert.Equal(NamedArchitectures.Get("ViT-B/32") with { Activation = MlpActivation.Gelu }, ClipConfig.FromJson(b32));
        var b32Quick = """{"embed_dim": 512, "quick_gelu": true, "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32}, """ + text + "}";
        Assert.Equal(NamedArchitectures.Get("ViT-B/32"), ClipConfig.FromJson(b32Quick));
        var rn50 = """{"embed_dim": 1024, "quick_gelu": true, "vision_cfg": {"image_size": 224, "layers": [3, 4, 6, 3], "width": 64, "patch_size": null}, """ + text + "}";
        Assert.Equal(NamedArchitectures.Get("RN50"), ClipConfig.FromJson(rn50));

        // ViT-H-14: 80-wide heads (16 of them), which the weights alone would read as 20.
        var h14 = ClipConfig.FromJson("""
            {"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 32, "width": 1280, "head_width": 80, "patch_size": 14},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}
            """);
        Assert.Equal(16, h14.EffectiveVisionHeads);
        Assert.Equal(5120, h14.VisionMlpWidth);
        Assert.Equal(MlpActivation.Gelu, h14.Activation);

        // ViT-g-14 and ViT-bigG-14: MLP widths int(width · mlp_ratio) as OpenCLIP computes them.
        var g14 = ClipConfig.FromJson("""
            {"embed_dim": 1024, "vision_cfg": {"image_size": 224, "layers": 40, "width": 1408, "head_width": 88, "mlp_ratio": 4.3637, "patch_size": 14},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1024, "heads": 16, "layers": 24}}
            """);
        Assert.Equal((16, 6144), (g14.EffectiveVisionHeads, g14.VisionMlpWidth));
        var bigG = ClipConfig.FromJson("""
            {"embed_dim": 1280, "vision_cfg": {"image_size": 224, "layers": 48, "width": 1664, "head_width": 104, "mlp_ratio": 4.9231, "patch_size": 14},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 1280, "heads": 20, "layers": 32}}
            """);
        Assert.Equal((16, 8192, 5120), (bigG.EffectiveVisionHeads, bigG.VisionMlpWidth, bigG.TextMlpWidth));
    }

    [Theory]
    [InlineData("""{"vision_cfg": {"timm_model_name": "convnext_base"}, "text_cfg": {}}""", "vision_cfg.timm_model_name")]
    [InlineData("""{"vision_cfg": {}, "text_cfg": {"hf_model_name": "xlm-roberta-base"}}""", "text_cfg.hf_model_name")]
    [InlineData("""{"vision_cfg": {"ls_init_value": 1e-5}, "text_cfg": {}}""", "vision_cfg.ls_init_value")]
    [InlineData("""{"vision_cfg": {"attentional_pool": true}, "text_cfg": {}}""", "vision_cfg.attentional_pool")]
    [InlineData("""{"init_logit_bias": -10, "vision_cfg": {}, "text_cfg": {}}""", "init_logit_bias")]
    [InlineData("""{"vision_cfg": {}, "text_cfg": {"hf_tokenizer_name": "timm/ViT-B-16-SigLIP"}}""", "text_cfg.hf_tokenizer_name")]
    [InlineData("""{"vision_cfg": {"image_size": [224, 256]}, "text_cfg": {}}""", "not square")]
    [InlineData("""{"vision_cfg": {"layers": [3, 4, 6]}, "text_cfg": {}}""", "four integers")]
    public void OpenClipVariantsThatAreNotBuiltAreRefused(string json, string expected)
    {
        var e = Assert.Throws<ClipSharpException>(() => ClipConfig.FromJson(json, "model.json"));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("model.json", e.Message);
    }

    [Theory]
    [InlineData("""{"activation": "relu"}""", "relu")]
    [InlineData("""{"transformer_mlp_width": "wide"}""", "transformer_mlp_width")]
    [InlineData("""{"quick_gelu": false, "transformer_mlp_width": 0}""", "MLP widths")]
    public void ClipSharpJsonRejectsBadActivationAndWidths(string extra, string expected)
    {
        var obj = JsonNode.Parse(NamedArchitectures.Get("ViT-B/32").ToJson())!.AsObject();
        foreach (var (k, v) in JsonNode.Parse(extra)!.AsObject()) obj[k] = v?.DeepClone();
        var e = Assert.Throws<ClipSharpException>(() => ClipConfig.FromJson(obj.ToJsonString(), "arch.json"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void ArchitectureInferenceReadsMlpWidthsButCannotSeeTheActivation()
    {
        using var model = new ClipModel(Tiny);
        var shapes = model.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.shape);
        var inferred = ArchitectureInference.Infer(shapes);
        Assert.Equal((96, 160), (inferred.VisionMlpWidth, inferred.TextMlpWidth));
        Assert.Equal(MlpActivation.QuickGelu, inferred.Activation);
        Assert.Equal(1, inferred.TransformerHeads); // build_model's width/64: why published configs matter
    }

    [Fact]
    public void GeluModelRoundTripsThroughSavedMetadataAndOpenClipSiblingConfig()
    {
        using var dir = new TempDir();
        torch.manual_seed(5);
        using var model = new ClipModel(Tiny);
        model.eval();
        using var scope = NewDisposeScope();
        var pixels = torch.randn(2, 3, 32, 32);
        var ids = torch.tensor(new long[,] { { 1, 5, 7, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, { 1, 9, 99, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 } });
        Tensor img, txt;
        using (torch.no_grad()) { img = model.EncodeImage(pixels); txt = model.EncodeText(ids); }

        // ClipModel.Save keeps the architecture in the file.
        var saved = dir.File("tiny.safetensors");
        model.Save(saved);
        void AssertLoadsSame(string path, string how)
        {
            using var loaded = ClipModel.Load(path);
            using var _ = torch.no_grad();
            Assert.Equal(Tiny, loaded.Config);
            AssertBitIdentical(img, loaded.EncodeImage(pixels), $"image features ({how})");
            AssertBitIdentical(txt, loaded.EncodeText(ids), $"text features ({how})");
        }
        AssertLoadsSame(saved, "saved metadata");

        // Bare weights as OpenCLIP publishes them, with open_clip_config.json in the same folder.
        var hubDir = Directory.CreateDirectory(dir.File("hub")).FullName;
        var weights = Path.Combine(hubDir, "open_clip_model.safetensors");
        using (var sd = model.ExportStateDict()) SafeTensors.Save(weights, sd);
        File.WriteAllText(Path.Combine(hubDir, OpenClipConfig.HubConfigFileName), "{\"model_cfg\": " + TinyOpenClip + "}");
        Assert.Equal(Path.Combine(hubDir, OpenClipConfig.HubConfigFileName), ClipModel.SiblingConfigPath(weights));
        AssertLoadsSame(weights, "open_clip_config.json");

        // Hugging Face layout: hidden_act and intermediate_size carry the same choices.
        var hfDir = Directory.CreateDirectory(dir.File("hf")).FullName;
        using (var sd = model.ExportStateDict())
        using (var hf = HuggingFaceLayout.FromOpenAI(sd, Tiny))
            SafeTensors.Save(Path.Combine(hfDir, "model.safetensors"), hf);
        HuggingFaceLayout.WriteConfig(Tiny, Path.Combine(hfDir, "config.json"));
        using (var loaded = ClipModel.Load(hfDir))
        using (torch.no_grad())
        {
            Assert.Equal(Tiny, loaded.Config);
            AssertBitIdentical(img, loaded.EncodeImage(pixels), "image features (Hugging Face)");
        }
    }
}
