"""ImageNet-1k label names and the coarse common nouns they belong to.

A classifier says "tabby" or "espresso"; people search for "cat" and "coffee". Each fine label
maps to a few coarse nouns (a "tabby" is a "cat" and an "animal"), so object filters and text
search work with everyday words. Labels are the torchvision names, shipped in data/.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

# (first index, last index, coarse nouns) over the animal block of ImageNet's class order.
_RANGES: tuple[tuple[int, int, tuple[str, ...]], ...] = (
    (0, 6, ("fish",)), (389, 397, ("fish",)), (2, 4, ("shark",)),
    (7, 24, ("bird",)), (80, 100, ("bird",)), (127, 146, ("bird",)),
    (7, 8, ("chicken",)), (97, 99, ("duck",)), (22, 24, ("bird of prey",)),
    (25, 29, ("salamander", "amphibian")), (30, 32, ("frog", "amphibian")),
    (33, 37, ("turtle", "reptile")), (38, 48, ("lizard", "reptile")),
    (49, 50, ("crocodile", "reptile")), (52, 68, ("snake", "reptile")),
    (72, 77, ("spider",)), (118, 121, ("crab", "seafood")), (122, 124, ("lobster", "seafood")),
    (147, 148, ("whale",)), (150, 150, ("seal",)),
    (151, 268, ("dog", "pet")), (273, 275, ("dog",)), (269, 272, ("wolf",)),
    (277, 280, ("fox",)), (281, 285, ("cat", "pet")), (286, 293, ("big cat", "wild cat")),
    (294, 297, ("bear",)), (300, 320, ("insect",)), (300, 307, ("beetle",)),
    (321, 326, ("butterfly", "insect")), (330, 332, ("rabbit",)), (333, 338, ("rodent",)),
    (339, 339, ("horse",)), (340, 340, ("zebra", "horse")), (341, 343, ("pig",)),
    (345, 347, ("cattle", "cow")), (348, 350, ("sheep", "goat")), (351, 353, ("antelope", "deer")),
    (354, 355, ("camel",)), (365, 369, ("ape", "primate")), (370, 384, ("monkey", "primate")),
    (385, 386, ("elephant",)), (101, 101, ("elephant",)), (387, 388, ("panda",)),
    (0, 397, ("animal",)),
    (948, 957, ("fruit", "food")), (936, 947, ("vegetable", "food")),
    (923, 935, ("food",)), (959, 965, ("food",)),
)

_GROUPS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("car", "vehicle"): ("beach wagon", "cab", "convertible", "jeep", "limousine", "minivan",
                         "Model T", "racer", "sports car", "ambulance", "police van", "go-kart"),
    ("truck", "vehicle"): ("fire engine", "garbage truck", "moving van", "pickup", "tow truck",
                           "trailer truck", "tractor", "forklift"),
    ("bus", "vehicle"): ("school bus", "minibus", "trolleybus"),
    ("train", "vehicle"): ("bullet train", "electric locomotive", "freight car", "passenger car",
                           "steam locomotive", "streetcar"),
    ("bicycle", "vehicle"): ("bicycle-built-for-two", "mountain bike", "tricycle", "unicycle"),
    ("motorcycle", "vehicle"): ("moped", "motor scooter"),
    ("boat", "vehicle"): ("canoe", "catamaran", "container ship", "fireboat", "gondola",
                          "lifeboat", "liner", "pirate", "schooner", "speedboat", "submarine",
                          "trimaran", "yawl", "aircraft carrier", "paddlewheel", "wreck"),
    ("airplane", "aircraft", "vehicle"): ("airliner", "warplane", "wing"),
    ("aircraft",): ("airship", "balloon", "parachute"),
    ("rocket", "spacecraft"): ("missile", "projectile", "space shuttle"),
    ("coffee", "drink"): ("espresso",),
    ("coffee",): ("espresso maker", "coffeepot"),
    ("cup", "mug"): ("coffee mug",),
    ("cup",): ("cup", "measuring cup"),
    ("wine", "drink"): ("red wine",),
    ("bottle",): ("beer bottle", "wine bottle", "water bottle", "pop bottle", "pill bottle",
                  "water jug", "whiskey jug"),
    ("beer", "drink"): ("beer glass",),
    ("bread", "food"): ("French loaf", "bagel", "pretzel"),
    ("burger", "sandwich"): ("cheeseburger",),
    ("dessert",): ("ice cream", "ice lolly", "trifle", "chocolate sauce"),
    ("soup",): ("consomme", "hot pot"),
    ("pasta",): ("carbonara",),
    ("apple",): ("Granny Smith",),
    ("flower", "plant"): ("daisy", "yellow lady's slipper"),
    ("mushroom",): ("agaric", "bolete", "gyromitra", "stinkhorn", "earthstar", "hen-of-the-woods",
                    "coral fungus"),
    ("chair", "furniture"): ("barber chair", "folding chair", "rocking chair", "throne"),
    ("sofa", "couch", "furniture"): ("studio couch",),
    ("table", "furniture"): ("dining table", "desk"),
    ("bed", "furniture"): ("four-poster", "crib", "cradle", "bassinet"),
    ("furniture",): ("bookcase", "china cabinet", "wardrobe", "chiffonier", "chest",
                     "entertainment center", "park bench"),
    ("phone",): ("cellular telephone", "dial telephone", "pay-phone"),
    ("computer",): ("laptop", "notebook", "desktop computer", "hand-held computer"),
    ("screen",): ("monitor", "screen", "television"),
    ("keyboard",): ("computer keyboard", "typewriter keyboard", "space bar"),
    ("camera",): ("reflex camera", "Polaroid camera"),
    ("clock",): ("analog clock", "digital clock", "wall clock"),
    ("watch",): ("digital watch", "stopwatch"),
    ("guitar", "musical instrument"): ("acoustic guitar", "electric guitar"),
    ("piano", "musical instrument"): ("grand piano", "upright"),
    ("drum", "musical instrument"): ("drum", "steel drum"),
    ("musical instrument",): ("accordion", "banjo", "cello", "violin", "bassoon", "flute",
                              "French horn", "trombone", "sax", "cornet", "oboe", "harp",
                              "marimba", "harmonica", "panpipe", "ocarina", "gong", "chime"),
    ("ball",): ("baseball", "basketball", "croquet ball", "golf ball", "ping-pong ball",
                "rugby ball", "soccer ball", "tennis ball", "volleyball"),
    ("building",): ("barn", "castle", "church", "monastery", "mosque", "palace", "stupa",
                    "greenhouse", "boathouse", "cinema", "library", "prison", "planetarium",
                    "restaurant", "bakery", "barbershop", "bookshop", "butcher shop",
                    "grocery store", "shoe shop", "tobacco shop", "toyshop", "confectionery"),
    ("bridge",): ("steel arch bridge", "suspension bridge", "viaduct"),
    ("mountain", "landscape"): ("alp", "volcano"),
    ("landscape",): ("cliff", "valley", "promontory", "geyser"),
    ("lake", "water", "landscape"): ("lakeside",),
    ("beach", "sea", "water", "landscape"): ("seashore", "sandbar"),
    ("sea", "water"): ("coral reef",),
    ("person",): ("ballplayer", "groom", "scuba diver"),
    ("pan", "cookware"): ("frying pan", "wok", "Dutch oven", "caldron", "pot", "Crock Pot"),
    ("appliance",): ("microwave", "refrigerator", "stove", "toaster", "dishwasher", "washer",
                     "vacuum", "electric fan", "space heater", "waffle iron", "iron"),
    ("bowl", "dish"): ("soup bowl", "mixing bowl"),
    ("plate", "dish"): ("plate",),
    ("bag",): ("backpack", "purse", "mailbag", "plastic bag", "sleeping bag"),
    ("hat",): ("cowboy hat", "sombrero", "bonnet", "mortarboard", "bathing cap", "shower cap"),
    ("shoe",): ("cowboy boot", "Loafer", "running shoe", "sandal", "clog"),
    ("sunglasses",): ("sunglass", "sunglasses"),
    ("book",): ("book jacket", "comic book"),
    ("toy",): ("teddy", "jigsaw puzzle", "pinwheel"),
    ("teddy bear",): ("teddy",),
    ("sign",): ("street sign", "traffic light"),
    ("tent",): ("mountain tent", "yurt"),
    ("gun", "weapon"): ("assault rifle", "rifle", "revolver"),
    ("lamp",): ("table lamp", "lampshade"),
    ("clothing",): ("jersey", "sweatshirt", "suit", "kimono", "fur coat", "trench coat",
                    "cardigan", "jean", "miniskirt", "gown", "poncho", "lab coat", "abaya",
                    "cloak", "pajama", "military uniform", "academic gown", "apron"),
}


@cache
def labels() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class names, in class-index order."""
    text = resources.files("imgctx._backends").joinpath("data/imagenet_labels.txt").read_text("utf-8")
    return tuple(line for line in text.splitlines() if line)


@cache
def coarse_nouns() -> tuple[tuple[str, ...], ...]:
    """For each class index, the coarse nouns it belongs to (lower-case, without the label)."""
    names = labels()
    index = {name: i for i, name in enumerate(names)}
    nouns: list[list[str]] = [[] for _ in names]
    for first, last, words in _RANGES:
        for i in range(first, last + 1):
            nouns[i].extend(w for w in words if w not in nouns[i])
    for words, members in _GROUPS.items():
        for member in members:
            i = index[member]  # a KeyError here is a typo in the table; a test guards it
            nouns[i].extend(w for w in words if w not in nouns[i])
    return tuple(tuple(n for n in ns if n != names[i].lower()) for i, ns in enumerate(nouns))


def group_members() -> dict[tuple[str, ...], tuple[str, ...]]:
    """The name-keyed groups (for tests that check every member is a real label)."""
    return dict(_GROUPS)
