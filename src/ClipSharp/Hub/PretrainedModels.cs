namespace ClipSharp.Hub;

/// <summary>
/// The pretrained table: every (architecture, tag) of OpenCLIP's pretrained list whose architecture ClipSharp builds
/// (CLIP ViT and modified ResNet image towers, CLIP text transformer, CLIP's bicubic short-side resize and centre crop),
/// with the hub repository OpenCLIP fetches it from and, where one exists, the direct release URL as a second source.
/// </summary>
/// <remarks>
/// Left out because ClipSharp does not build them: timm, ConvNeXt, EVA, SigLIP, CoCa, MobileCLIP and Hugging Face text
/// towers; MetaCLIP 2 "worldwide" models (another tokenizer); the DFN-5B ViT-H-14 models (their preprocessing squashes
/// the image instead of cropping it). The <c>-quickgelu</c> architecture names OpenCLIP derives for QuickGELU weights
/// resolve to the same entries: ClipSharp takes the activation from the entry, whichever spelling is used.
/// </remarks>
public static class PretrainedModels
{
    const string OpenAIBase = "https://openaipublic.azureedge.net/clip/models/";
    const string OpenClipReleases = "https://github.com/mlfoundations/open_clip/releases/download/v0.2-weights/";
    const string MetaClip = "https://dl.fbaipublicfiles.com/MMPT/metaclip/";

    internal static readonly PretrainedArchitecture[] BuiltInArchitectures =
    [
        new("RN50", 1024, 224, [3, 4, 6, 3], 64, null, 512, 8, 12),
        new("RN101", 512, 224, [3, 4, 23, 3], 64, null, 512, 8, 12),
        new("RN50x4", 640, 288, [4, 6, 10, 6], 80, null, 640, 10, 12),
        new("RN50x16", 768, 384, [6, 8, 18, 8], 96, null, 768, 12, 12),
        new("RN50x64", 1024, 448, [3, 15, 36, 10], 128, null, 1024, 16, 12),
        new("ViT-B-32", 512, 224, [12], 768, 32, 512, 8, 12),
        new("ViT-B-32-256", 512, 256, [12], 768, 32, 512, 8, 12),
        new("ViT-B-16", 512, 224, [12], 768, 16, 512, 8, 12),
        new("ViT-B-16-plus-240", 640, 240, [12], 896, 16, 640, 10, 12),
        new("ViT-L-14", 768, 224, [24], 1024, 14, 768, 12, 12),
        new("ViT-L-14-336", 768, 336, [24], 1024, 14, 768, 12, 12),
        new("ViT-H-14", 1024, 224, [32], 1280, 14, 1024, 16, 24, HeadWidth: 80),
        new("ViT-g-14", 1024, 224, [40], 1408, 14, 1024, 16, 24, HeadWidth: 88, MlpRatio: 4.3637),
        new("ViT-bigG-14", 1280, 224, [48], 1664, 14, 1280, 20, 32, HeadWidth: 104, MlpRatio: 4.9231),
    ];

    static PretrainedWeights OpenAI(string arch, string repo, string sha256, string file) =>
        new(arch, "openai", repo, QuickGelu: true, Url: OpenAIBase + sha256 + "/" + file, UrlSha256: sha256);

    // OpenCLIP's own releases carry the first 8 hex digits of the SHA-256 at the end of the file name.
    static PretrainedWeights Release(string arch, string tag, string repo, string file, bool quickGelu = false) =>
        new(arch, tag, repo, quickGelu, OpenClipReleases + file, Path.GetFileNameWithoutExtension(file).Split('-')[^1]);

    static PretrainedWeights Hub(string arch, string tag, string repo, bool quickGelu = false) => new(arch, tag, repo, quickGelu);

    static PretrainedWeights Meta(string arch, string tag, string repo, string file, bool quickGelu = true) =>
        new(arch, tag, repo, quickGelu, MetaClip + file);

    static IEnumerable<PretrainedWeights> DataComp(string arch, string prefix, string scale, string suffix, string tagScale, string tagSuffix)
    {
        // DataComp's filtering baselines: one repository per filter, named CommonPool.<scale>.<filter>.
        foreach (var filter in new[] { "clip", "laion", "image", "text", "basic" })
            yield return Hub(arch, $"commonpool_{tagScale}_{filter}_{tagSuffix}", $"laion/{prefix}-CommonPool.{scale}.{filter}-{suffix}");
        yield return Hub(arch, $"commonpool_{tagScale}_{tagSuffix}", $"laion/{prefix}-CommonPool.{scale}-{suffix}");
    }

    static readonly (float, float, float) Half = (0.5f, 0.5f, 0.5f);

    internal static readonly PretrainedWeights[] BuiltIn =
    [
        OpenAI("RN50", "timm/resnet50_clip.openai", "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762", "RN50.pt"),
        Release("RN50", "yfcc15m", "timm/resnet50_clip.yfcc15m", "rn50-quickgelu-yfcc15m-455df137.pt", quickGelu: true),
        Release("RN50", "cc12m", "timm/resnet50_clip.cc12m", "rn50-quickgelu-cc12m-f000538c.pt", quickGelu: true),
        OpenAI("RN101", "timm/resnet101_clip.openai", "8fa8567bab74a42d41c5915025a8e4538c3bdbe8804a470a72f30b0d94fab599", "RN101.pt"),
        Release("RN101", "yfcc15m", "timm/resnet101_clip.yfcc15m", "rn101-quickgelu-yfcc15m-3e04b30e.pt", quickGelu: true),
        OpenAI("RN50x4", "timm/resnet50x4_clip.openai", "7e526bd135e493cef0776de27d5f42653e6b4c8bf9e0f653bb11773263205fdd", "RN50x4.pt"),
        OpenAI("RN50x16", "timm/resnet50x16_clip.openai", "52378b407f34354e150460fe41077663dd5b39c54cd0bfd2b27167a4a06ec9aa", "RN50x16.pt"),
        OpenAI("RN50x64", "timm/resnet50x64_clip.openai", "be1cfb55d75a9666199fb2206c106743da0f6468c9d327f3e0d0a543a9919d9c", "RN50x64.pt"),

        OpenAI("ViT-B-32", "timm/vit_base_patch32_clip_224.openai", "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af", "ViT-B-32.pt"),
        Release("ViT-B-32", "laion400m_e31", "timm/vit_base_patch32_clip_224.laion400m_e31", "vit_b_32-quickgelu-laion400m_e31-d867053b.pt", quickGelu: true),
        Release("ViT-B-32", "laion400m_e32", "timm/vit_base_patch32_clip_224.laion400m_e32", "vit_b_32-quickgelu-laion400m_e32-46683a32.pt", quickGelu: true),
        Release("ViT-B-32", "laion2b_e16", "timm/vit_base_patch32_clip_224.laion2b_e16", "vit_b_32-laion2b_e16-af8dbd0c.pth"),
        Hub("ViT-B-32", "laion2b_s34b_b79k", "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"),
        Hub("ViT-B-32", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-32-DataComp.XL-s13B-b90K"),
        Hub("ViT-B-32", "datacomp_m_s128m_b4k", "laion/CLIP-ViT-B-32-DataComp.M-s128M-b4K"),
        .. DataComp("ViT-B-32", "CLIP-ViT-B-32", "M", "s128M-b4K", "m", "s128m_b4k"),
        Hub("ViT-B-32", "datacomp_s_s13m_b4k", "laion/CLIP-ViT-B-32-DataComp.S-s13M-b4K"),
        .. DataComp("ViT-B-32", "CLIP-ViT-B-32", "S", "s13M-b4K", "s", "s13m_b4k"),
        Meta("ViT-B-32", "metaclip_400m", "timm/vit_base_patch32_clip_224.metaclip_400m", "b32_400m.pt"),
        Meta("ViT-B-32", "metaclip_fullcc", "timm/vit_base_patch32_clip_224.metaclip_2pt5b", "b32_fullcc2.5b.pt"),
        Hub("ViT-B-32-256", "datacomp_s34b_b86k", "laion/CLIP-ViT-B-32-256x256-DataComp-s34B-b86K"),

        OpenAI("ViT-B-16", "timm/vit_base_patch16_clip_224.openai", "5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f", "ViT-B-16.pt"),
        Release("ViT-B-16", "laion400m_e31", "timm/vit_base_patch16_clip_224.laion400m_e31", "vit_b_16-laion400m_e31-00efa78f.pt"),
        Release("ViT-B-16", "laion400m_e32", "timm/vit_base_patch16_clip_224.laion400m_e32", "vit_b_16-laion400m_e32-55e67d44.pt"),
        Hub("ViT-B-16", "laion2b_s34b_b88k", "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"),
        Hub("ViT-B-16", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-B-16-DataComp.XL-s13B-b90K"),
        Hub("ViT-B-16", "datacomp_l_s1b_b8k", "laion/CLIP-ViT-B-16-DataComp.L-s1B-b8K"),
        .. DataComp("ViT-B-16", "CLIP-ViT-B-16", "L", "s1B-b8K", "l", "s1b_b8k"),
        Hub("ViT-B-16", "dfn2b", "apple/DFN2B-CLIP-ViT-B-16", quickGelu: true),
        Meta("ViT-B-16", "metaclip_400m", "timm/vit_base_patch16_clip_224.metaclip_400m", "b16_400m.pt"),
        Meta("ViT-B-16", "metaclip_fullcc", "timm/vit_base_patch16_clip_224.metaclip_2pt5b", "b16_fullcc2.5b.pt"),
        Release("ViT-B-16-plus-240", "laion400m_e31", "timm/vit_base_patch16_plus_clip_240.laion400m_e31", "vit_b_16_plus_240-laion400m_e31-8fb26589.pt"),
        Release("ViT-B-16-plus-240", "laion400m_e32", "timm/vit_base_patch16_plus_clip_240.laion400m_e31", "vit_b_16_plus_240-laion400m_e32-699c4b84.pt") with
        {
            Note = "OpenCLIP maps this tag to the laion400m_e31 hub repository; the release URL has the epoch-32 file",
        },

        OpenAI("ViT-L-14", "timm/vit_large_patch14_clip_224.openai", "b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836", "ViT-L-14.pt"),
        Release("ViT-L-14", "laion400m_e31", "timm/vit_large_patch14_clip_224.laion400m_e31", "vit_l_14-laion400m_e31-69988bb6.pt"),
        Release("ViT-L-14", "laion400m_e32", "timm/vit_large_patch14_clip_224.laion400m_e32", "vit_l_14-laion400m_e32-3d133497.pt"),
        Hub("ViT-L-14", "laion2b_s32b_b82k", "laion/CLIP-ViT-L-14-laion2B-s32B-b82K") with { Mean = Half, Std = Half },
        Hub("ViT-L-14", "datacomp_xl_s13b_b90k", "laion/CLIP-ViT-L-14-DataComp.XL-s13B-b90K"),
        Hub("ViT-L-14", "commonpool_xl_clip_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL.clip-s13B-b90K"),
        Hub("ViT-L-14", "commonpool_xl_laion_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL.laion-s13B-b90K"),
        Hub("ViT-L-14", "commonpool_xl_s13b_b90k", "laion/CLIP-ViT-L-14-CommonPool.XL-s13B-b90K"),
        Meta("ViT-L-14", "metaclip_400m", "timm/vit_large_patch14_clip_224.metaclip_400m", "l14_400m.pt"),
        Meta("ViT-L-14", "metaclip_fullcc", "timm/vit_large_patch14_clip_224.metaclip_2pt5b", "l14_fullcc2.5b.pt"),
        Hub("ViT-L-14", "dfn2b", "apple/DFN2B-CLIP-ViT-L-14", quickGelu: true),
        Hub("ViT-L-14", "dfn2b_s39b", "apple/DFN2B-CLIP-ViT-L-14-39B"),
        OpenAI("ViT-L-14-336", "timm/vit_large_patch14_clip_336.openai", "3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02", "ViT-L-14-336px.pt"),

        Hub("ViT-H-14", "laion2b_s32b_b79k", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"),
        Meta("ViT-H-14", "metaclip_fullcc", "timm/vit_huge_patch14_clip_224.metaclip_2pt5b", "h14_fullcc2.5b.pt"),
        Meta("ViT-H-14", "metaclip_altogether", "timm/vit_huge_patch14_clip_224.metaclip_altogether", "h14_v1.2_altogether.pt", quickGelu: false),
        Hub("ViT-g-14", "laion2b_s12b_b42k", "laion/CLIP-ViT-g-14-laion2B-s12B-b42K"),
        Hub("ViT-g-14", "laion2b_s34b_b88k", "laion/CLIP-ViT-g-14-laion2B-s34B-b88K"),
        Hub("ViT-bigG-14", "laion2b_s39b_b160k", "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"),
        Meta("ViT-bigG-14", "metaclip_fullcc", "timm/vit_gigantic_patch14_clip_224.metaclip_2pt5b", "G14_fullcc2.5b.pt"),
    ];

    /// <summary>Every entry, grouped by architecture in the table's order.</summary>
    public static IReadOnlyList<PretrainedWeights> All => BuiltIn;

    /// <summary>The architectures that have entries, in the table's order.</summary>
    public static IReadOnlyList<string> Architectures { get; } = BuiltIn.Select(e => e.Architecture).Distinct().ToArray();

    /// <summary>The tags of an architecture (any accepted spelling, see <see cref="Find(string, string)"/>); empty when it is not in the table.</summary>
    public static IReadOnlyList<string> TagsOf(string architecture) =>
        NormalizeArchitecture(architecture, out var quickGeluOnly) is { } arch
            ? BuiltIn.Where(e => e.Architecture == arch && (!quickGeluOnly || e.QuickGelu)).Select(e => e.Tag).ToArray()
            : [];

    /// <summary>
    /// The entry for an architecture and a tag, or null. Architecture names are case-insensitive and accept OpenAI's
    /// spellings (<c>ViT-B/32</c>, <c>ViT-L/14@336px</c>) and OpenCLIP's <c>-quickgelu</c> suffix; tags are
    /// case-insensitive with '-' for '_' (as OpenCLIP cleans them).
    /// </summary>
    public static PretrainedWeights? Find(string architecture, string tag) => Find(architecture, tag, []);

    internal static PretrainedWeights? Find(string architecture, string tag, IReadOnlyList<PretrainedWeights> extra)
    {
        ArgumentNullException.ThrowIfNull(tag);
        string clean = CleanTag(tag);
        foreach (var e in extra)
            if (string.Equals(e.Architecture, architecture, StringComparison.OrdinalIgnoreCase) && CleanTag(e.Tag) == clean) return e;
        if (NormalizeArchitecture(architecture, out var quickGeluOnly) is not { } arch) return null;
        return BuiltIn.FirstOrDefault(e => e.Architecture == arch && e.Tag == clean && (!quickGeluOnly || e.QuickGelu));
    }

    internal static PretrainedArchitecture? ArchitectureOf(string name, IReadOnlyList<PretrainedArchitecture> extra) =>
        extra.FirstOrDefault(a => a.Name == name) ?? BuiltInArchitectures.FirstOrDefault(a => a.Name == name);

    /// <summary>OpenCLIP's tag cleaning: lower case, '-' read as '_'.</summary>
    internal static string CleanTag(string tag) => tag.Trim().ToLowerInvariant().Replace('-', '_');

    /// <summary>The table's spelling of an architecture name, or null; <paramref name="quickGeluOnly"/> for a <c>-quickgelu</c> name.</summary>
    internal static string? NormalizeArchitecture(string name, out bool quickGeluOnly)
    {
        ArgumentNullException.ThrowIfNull(name);
        string s = name.Trim().Replace('/', '-').Replace('_', '-');
        s = s.Replace("@336px", "-336", StringComparison.OrdinalIgnoreCase);
        quickGeluOnly = s.EndsWith("-quickgelu", StringComparison.OrdinalIgnoreCase);
        if (quickGeluOnly) s = s[..^"-quickgelu".Length];
        foreach (var a in BuiltInArchitectures)
            if (string.Equals(a.Name, s, StringComparison.OrdinalIgnoreCase)) return a.Name;
        return null;
    }
}
