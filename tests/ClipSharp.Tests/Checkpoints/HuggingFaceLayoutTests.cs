using ClipSharp.Checkpoints;
using ClipSharp.Modeling;
using TorchSharp;
using static TorchSharp.torch;
using static ClipSharp.Tests.Checkpoints.TestUtil;

namespace ClipSharp.Tests.Checkpoints;

public class HuggingFaceLayoutTests
{
    static ClipConfig VitSmallConfig() => ClipConfig.FromJsonFile(Golden.Path("models", "vit_small.config.json"));

    [Fact]
    public void OpenAIToHuggingFaceAndBackIsBitIdentical()
    {
        using var oa = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        var cfg = VitSmallConfig();
        using var hf = HuggingFaceLayout.FromOpenAI(oa, cfg);
        using var back = HuggingFaceLayout.ToOpenAI(hf, cfg);
        // ToOpenAI emits the reference state_dict order.
        Assert.Equal(oa.Keys, back.Keys);
        foreach (var (k, t) in oa) AssertBitIdentical(t, back[k], k);
    }

    [Fact]
    public void HuggingFaceKeyNamesAndShapes()
    {
        using var oa = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        var cfg = VitSmallConfig();
        using var hf = HuggingFaceLayout.FromOpenAI(oa, cfg);
        // 62 OpenAI tensors; each of the 4 blocks turns 2 packed in_proj tensors into 6.
        Assert.Equal(62 + 4 * 4, hf.Count);
        long[] S(string k) => hf[k].shape;
        Assert.Equal([64L, 64L], S("visual_projection.weight"));
        Assert.Equal([64L, 64L], S("text_projection.weight"));
        Assert.Equal([64L, 3L, 16L, 16L], S("vision_model.embeddings.patch_embedding.weight"));
        Assert.Equal([64L], S("vision_model.embeddings.class_embedding"));
        Assert.Equal([17L, 64L], S("vision_model.embeddings.position_embedding.weight"));
        Assert.Equal([64L], S("vision_model.pre_layrnorm.weight"));
        Assert.Equal([64L], S("vision_model.post_layernorm.bias"));
        Assert.Equal([49408L, 64L], S("text_model.embeddings.token_embedding.weight"));
        Assert.Equal([77L, 64L], S("text_model.embeddings.position_embedding.weight"));
        Assert.Equal([64L], S("text_model.final_layer_norm.weight"));
        foreach (var tower in new[] { "vision_model", "text_model" })
            for (int i = 0; i < 2; i++)
            {
                string p = $"{tower}.encoder.layers.{i}.";
                foreach (var q in new[] { "q_proj", "k_proj", "v_proj", "out_proj" })
                {
                    Assert.Equal([64L, 64L], S($"{p}self_attn.{q}.weight"));
                    Assert.Equal([64L], S($"{p}self_attn.{q}.bias"));
                }
                Assert.Equal([256L, 64L], S(p + "mlp.fc1.weight"));
                Assert.Equal([64L, 256L], S(p + "mlp.fc2.weight"));
                Assert.Equal([64L], S(p + "layer_norm1.weight"));
                Assert.Equal([64L], S(p + "layer_norm2.bias"));
            }
        Assert.Equal([], S("logit_scale"));
        Assert.DoesNotContain(hf.Keys, k => k.Contains("position_ids"));

        // q is the first third of in_proj, k the second, v the third; projections are transposed.
        using var w = oa["visual.transformer.resblocks.1.attn.in_proj_weight"];
        AssertBitIdentical(w.narrow(0, 0, 64), hf["vision_model.encoder.layers.1.self_attn.q_proj.weight"], "q");
        AssertBitIdentical(w.narrow(0, 64, 64), hf["vision_model.encoder.layers.1.self_attn.k_proj.weight"], "k");
        AssertBitIdentical(w.narrow(0, 128, 64), hf["vision_model.encoder.layers.1.self_attn.v_proj.weight"], "v");
        AssertBitIdentical(oa["visual.proj"].t().contiguous(), hf["visual_projection.weight"], "visual_projection");
        AssertBitIdentical(oa["text_projection"].t().contiguous(), hf["text_projection.weight"], "text_projection");
    }

    [Fact]
    public void ResNetHasNoHuggingFaceLayout()
    {
        using var rn = SafeTensors.Load(Golden.Path("models", "rn_small.safetensors"));
        var cfg = ClipConfig.FromJsonFile(Golden.Path("models", "rn_small.config.json"));
        var e = Assert.Throws<NotSupportedException>(() => HuggingFaceLayout.FromOpenAI(rn, cfg));
        Assert.Contains("ViT", e.Message);
        Assert.Throws<NotSupportedException>(() => HuggingFaceLayout.ToConfigJson(cfg));
    }

    [Fact]
    public void ConfigJsonRoundTripAndLayerCounts()
    {
        using var dir = new TempDir();
        var cfg = VitSmallConfig();
        var path = dir.File("config.json");
        HuggingFaceLayout.WriteConfig(cfg, path);
        var back = HuggingFaceLayout.ReadConfig(path);
        Assert.Equal(cfg, back);

        foreach (var name in NamedArchitectures.Names.Where(n => n.StartsWith("ViT")))
        {
            var c = NamedArchitectures.Get(name);
            HuggingFaceLayout.WriteConfig(c, path);
            Assert.Equal(c, HuggingFaceLayout.ReadConfig(path));
        }
    }

    [Fact]
    public void ReadsHuggingFaceStyleConfigWithDefaultsAndHeadOverride()
    {
        using var dir = new TempDir();
        var path = dir.File("config.json");
        File.WriteAllText(path, """
            {"architectures":["CLIPModel"],"model_type":"clip","projection_dim":768,
             "text_config":{"hidden_size":768,"num_attention_heads":12,"num_hidden_layers":12,"max_position_embeddings":77,"vocab_size":49408},
             "vision_config":{"hidden_size":1024,"num_attention_heads":16,"num_hidden_layers":24,"patch_size":14,"image_size":336}}
            """);
        Assert.Equal(NamedArchitectures.Get("ViT-L/14@336px"), HuggingFaceLayout.ReadConfig(path));

        File.WriteAllText(path, """{"projection_dim":64,"vision_config":{"hidden_size":64,"num_attention_heads":2,"num_hidden_layers":2,"patch_size":16,"image_size":64},"text_config":{"hidden_size":64,"num_attention_heads":2,"num_hidden_layers":2}}""");
        var c = HuggingFaceLayout.ReadConfig(path);
        Assert.Equal(2, c.EffectiveVisionHeads);
        Assert.Equal(77, c.ContextLength);

        // LAION conversions: exact GELU in both towers, and the intermediate sizes.
        File.WriteAllText(path, """{"vision_config":{"hidden_act":"gelu","intermediate_size":3072},"text_config":{"hidden_act":"gelu"}}""");
        var gelu = HuggingFaceLayout.ReadConfig(path);
        Assert.Equal(NamedArchitectures.Get("ViT-B/32") with { Activation = MlpActivation.Gelu }, gelu);
        Assert.Null(gelu.VisionMlpWidthOverride);

        // One tower GELU and the other QuickGELU (the default) cannot be built.
        File.WriteAllText(path, """{"vision_config":{"hidden_act":"gelu"}}""");
        Assert.Contains("different activations", Assert.Throws<InvalidDataException>(() => HuggingFaceLayout.ReadConfig(path)).Message);

        File.WriteAllText(path, """{"vision_config":{"hidden_act":"gelu_new"},"text_config":{"hidden_act":"gelu_new"}}""");
        var unknown = Assert.Throws<InvalidDataException>(() => HuggingFaceLayout.ReadConfig(path)).Message;
        Assert.Contains("gelu_new", unknown);
        Assert.Contains(path, unknown);
    }

    [Fact]
    public void LoaderConvertsHuggingFaceDirectoryAndFile()
    {
        using var dir = new TempDir();
        using var oa = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        var cfg = VitSmallConfig();
        using (var hf = HuggingFaceLayout.FromOpenAI(oa, cfg))
        {
            // Hugging Face checkpoints often carry position_ids buffers; they are dropped.
            hf.Add("text_model.embeddings.position_ids", tensor(Enumerable.Range(0, 77).Select(i => (long)i).ToArray()).unsqueeze(0));
            SafeTensors.Save(dir.File("model.safetensors"), hf, new Dictionary<string, string> { ["format"] = "pt" });
        }
        HuggingFaceLayout.WriteConfig(cfg, dir.File("config.json"));

        foreach (var target in new[] { dir.Path, dir.File("model.safetensors") })
        {
            using var ck = CheckpointLoader.Load(target);
            Assert.Equal(CheckpointFormat.HuggingFace, ck.Format);
            Assert.Equal(cfg, ck.Config);
            Assert.Equal(cfg, ck.ConfigOrInferred());
            Assert.Equal(oa.Keys, ck.State.Keys);
            foreach (var (k, t) in oa) AssertBitIdentical(t, ck.State[k], k);
        }
    }

    [Fact]
    public void ToOpenAIReportsMissingAndUnknownKeys()
    {
        using var oa = SafeTensors.Load(Golden.Path("models", "vit_small.safetensors"));
        using var hf = HuggingFaceLayout.FromOpenAI(oa, VitSmallConfig());
        hf.Add("vision_model.some_new_thing", ones(1));
        Assert.Contains("some_new_thing", Assert.Throws<InvalidDataException>(() => HuggingFaceLayout.ToOpenAI(hf)).Message);
        hf.Remove("vision_model.some_new_thing");
        hf.Remove("vision_model.post_layernorm.weight");
        Assert.Contains("post_layernorm.weight", Assert.Throws<InvalidDataException>(() => HuggingFaceLayout.ToOpenAI(hf)).Message);
    }
}
