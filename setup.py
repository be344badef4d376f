"""Packaging for epsd_mm: Early Pruning with Self-Distillation on the OpenMMLab stack."""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version():
    scope = {}
    with open(osp.join(HERE, 'epsd_mm', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def parse_requirements(fname):
    """Requirement lines of ``fname``; ``-r other.txt`` lines are followed, comments dropped."""
    reqs = []
    with open(osp.join(HERE, fname)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                reqs += parse_requirements(osp.join(osp.dirname(fname), line[3:].strip()))
            else:
                reqs.append(line)
    return reqs


def readme():
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


setup(
    name='epsd_mm',
    version=read_version(),
    description='Early Pruning with Self-Distillation (EPSD) for mmengine, mmpretrain and mmdet',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.9',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    install_requires=parse_requirements('requirements/runtime.txt'),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        # torch/torchvision/mmcv are installed by tools/misc/install.sh in a fixed order
        'mim': parse_requirements('requirements/mminstall.txt'),
    },
    zip_safe=False,
)
